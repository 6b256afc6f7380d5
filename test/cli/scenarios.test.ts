// `kmaplab run` and `kmaplab convert-check` against a real server: every example passes, a
// wrong expectation fails with a readable diff and exit 1, and the conversion verdicts.
import { readdirSync, writeFileSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cli, root, startServer } from './fixtures/cli.js'

const server = await startServer()
t.teardown(() => server.lab.close())
const examples = readdirSync(join(root, 'examples'))
  .filter((f) => /\.(ya?ml|json)$/.test(f))
  .map((f) => `examples/${f}`)

t.test('every example passes kmaplab run, and the machines of passing runs are deleted', async (t) => {
  const r = await cli(['run', '--jobs', '4', ...examples], server.env)
  t.equal(r.code, 0, r.code === 0 ? 'exit 0' : r.stdout + r.stderr)
  const lines = r.stdout.split('\n').filter((l) => /^(PASS|FAIL|ERROR) /.test(l))
  t.equal(lines.length, examples.length)
  t.ok(lines.every((l) => l.startsWith('PASS ')), 'all PASS')
  t.match(r.stdout, new RegExp(`\n${examples.length} passed, 0 failed\n$`))
  const list = await cli(['machine', 'list', '--json'], server.env)
  t.same(JSON.parse(list.stdout).machines, [])
})

t.test('run --json: one document with every scenario', async (t) => {
  const r = await cli(['run', '--json', examples[0]!, examples[1]!], server.env)
  t.equal(r.code, 0)
  const doc = JSON.parse(r.stdout) as { passed: boolean; scenarios: { file: string; passed: boolean; steps: number }[] }
  t.equal(doc.passed, true)
  t.same(doc.scenarios.map((s) => s.file), [examples[0], examples[1]])
  t.ok(doc.scenarios.every((s) => s.passed && s.steps > 0))
})

t.test('a wrong expectation fails with the step, the path and a diff, and exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-cli-'))
  const wrong = join(dir, 'wrong.yaml')
  const text = readFileSync(join(root, 'examples/t02-two-maps-offset-unmap.yaml'), 'utf8')
  writeFileSync(wrong, text.replace('result: { addr: \'0xfff9a000\', slot: 1', 'result: { addr: \'0xfff9a000\', slot: 3'))
  const r = await cli(['run', wrong, 'examples/t03-guard-slots.yaml'], server.env)
  t.equal(r.code, 1)
  t.match(r.stdout, /^FAIL T02 two highmem maps on CPU 2, unmap with an offset\n  at step 2: kmap_local_page pid=T page=0x40001\n  expect\.result\.slot:\n  - expected  3\n  \+ got       1\n/)
  t.match(r.stdout, /machine m_\S+ kept: kmaplab state m_/, 'the failed machine is kept for a look')
  t.match(r.stdout, /\nPASS T03/, 'the other scenario still runs')
  t.match(r.stdout, /1 passed, 1 failed\n$/)

  const json = await cli(['run', '--json', wrong], server.env)
  t.equal(json.code, 1)
  const doc = JSON.parse(json.stdout) as { passed: boolean; scenarios: { failure: { step: number; path: string; expected: unknown; got: unknown } }[] }
  t.equal(doc.passed, false)
  t.match(doc.scenarios[0]!.failure, { step: 2, path: 'expect.result.slot', expected: 3, got: 1 })
})

t.test('an invalid scenario or a missing file fails with where and why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-cli-'))
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'name: x\nmachine: { arch: x86_32, cpus: 1 }\nsteps: [{ op: kmap_local_page, pid: Nobody, page: 1 }]\n')
  const r = await cli(['run', bad, join(dir, 'missing.yaml')], server.env)
  t.equal(r.code, 1)
  t.match(r.stdout, /ERROR .*bad\.yaml\n  .*unknown task name "Nobody"/)
  t.match(r.stdout, /ERROR .*missing\.yaml\n  cannot read .*missing\.yaml: ENOENT/)
})

t.test('convert-check: crash-dump-before is unsafe, the io-mapping loop is safe', async (t) => {
  const machines = async (): Promise<number> => (JSON.parse((await cli(['machine', 'list', '--json'], server.env)).stdout) as { machines: unknown[] }).machines.length
  const kept = await machines()
  const before = await cli(['convert-check', 'examples/crash-dump-before.yaml'], server.env)
  t.equal(before.code, 1, before.stderr)
  t.match(before.stdout, /: UNSAFE\n/)
  t.match(before.stdout, /step 3 \[unsafe\] user_copy_faults_in: /)
  const loop = await cli(['convert-check', 'examples/io-mapping-driver-loop.yaml'], server.env)
  t.equal(loop.code, 0, loop.stderr)
  t.match(loop.stdout, /: SAFE\n  converted: step 2 io_mapping_map_atomic_wc -> io_mapping_map_local_wc/)
  t.match(loop.stdout, /no divergence/)

  const json = await cli(['convert-check', '--json', 'examples/crash-dump-before.yaml', 'examples/t06-kmap-atomic-might-sleep.yaml'], server.env)
  t.equal(json.code, 1)
  const doc = JSON.parse(json.stdout) as { safe: boolean; scenarios: { report: { safe: boolean; divergences: { kind: string }[] } }[] }
  t.equal(doc.safe, false)
  t.same(doc.scenarios.map((s) => s.report.safe), [false, true])
  t.ok(doc.scenarios[1]!.report.divergences.some((d) => d.kind === 'sleep_splat_disappears'))
  t.equal(await machines(), kept, 'both runs of each check are deleted')
})
