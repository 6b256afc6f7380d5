// `kmaplab serve` is the lab server: it listens, serves the client commands, and stops
// cleanly on SIGTERM, with its settings from flags over the environment.
import t from 'tap'
import { tempDbFile } from '../store/fixtures/store.js'
import { cli, spawnCli, waitFor } from './fixtures/cli.js'

t.test('serve listens, answers the client, and exits 0 on SIGTERM', async (t) => {
  const server = spawnCli(['serve', '--port', '0', '--db', tempDbFile()], { KMAPLAB_DURABILITY: 'normal', LOG_LEVEL: 'info' })
  const exited = new Promise<number | null>((resolve) => server.on('close', resolve))
  t.teardown(() => void server.kill('SIGKILL'))
  const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(await waitFor(server.stdout!, /Server listening at http:\/\/127\.0\.0\.1:\d+/))![1]!
  const created = await cli(['machine', 'create', '--arch', 'x86_32', '--cpus', '1', '--url', url])
  t.equal(created.code, 0, created.stderr)
  t.match((await cli(['machine', 'list'], { KMAPLAB_URL: url })).stdout, created.stdout.trim())
  server.kill('SIGTERM')
  t.equal(await exited, 0)
})

t.test('serve reports a bad setting and exits 2', async (t) => {
  const r = await cli(['serve', '--port', '0', '--db', tempDbFile()], { KMAPLAB_DURABILITY: 'sometimes' })
  t.equal(r.code, 2)
  t.match(r.stderr, /KMAPLAB_DURABILITY=sometimes/)
})
