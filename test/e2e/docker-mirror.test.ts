// No Docker engine runs here, so the Dockerfile is checked two ways: its text must keep the
// properties the deployment depends on, and scripts/docker-mirror.sh must get a server from
// a clean directory through the same steps to a ready /readyz.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const root = fileURLToPath(new URL('../../', import.meta.url))
const dockerfile = readFileSync(root + 'Dockerfile', 'utf8')
const mirror = readFileSync(root + 'scripts/docker-mirror.sh', 'utf8')

// npm ci compiles better-sqlite3 from source: about a minute and a half on 2 cores.
t.setTimeout(240_000)

t.test('the Dockerfile keeps what the deployment depends on', async (t) => {
  const stages = dockerfile.match(/^FROM node:20-bookworm\S*/gm) ?? []
  t.equal(stages.length, 2, 'multi-stage, Node 20 on Debian')
  t.match(dockerfile, /^USER node$/m, 'runs as a non-root user')
  t.match(dockerfile, /^VOLUME \["\/data"\]$/m)
  t.match(dockerfile, /KMAPLAB_DB=\/data\/kmaplab\.db/)
  t.match(dockerfile, /^HEALTHCHECK[\s\S]*\/readyz/m)
  t.match(dockerfile, /^CMD \["node", "dist\/server\.js"\]$/m, 'exec form: node receives SIGTERM itself')
  // Whatever the image copies from the build context, the mirror copies from the repository.
  for (const [, src] of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const file of src!.split(/\s+/)) t.match(mirror, new RegExp(`\\b${file.replace('.', '\\.')}\\b`), `mirror copies ${file}`)
  }
  const healthcheck = /CMD node -e "(.+)"$/m.exec(dockerfile)![1]!
  t.ok(mirror.includes(healthcheck), 'the mirror checks readiness with the HEALTHCHECK command itself')
})

t.test('scripts/docker-mirror.sh builds in a clean directory, starts, and is ready', async (t) => {
  const { stdout } = await promisify(execFile)('bash', [root + 'scripts/docker-mirror.sh'], { timeout: 230_000, maxBuffer: 16 * 1024 * 1024 })
  t.match(stdout, /\/readyz answered 200/)
  t.match(stdout, /SIGTERM: clean exit/)
})
