// Every file in examples/ passes on a local Machine; a deliberately wrong expectation fails
// with a readable diff naming the step, the path, and both values.
import { readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseScenario, readScenario } from '../../src/scenario/format.js'
import { localExecutor } from '../../src/scenario/local.js'
import { formatRun } from '../../src/scenario/report.js'
import { runScenario } from '../../src/scenario/run.js'

const dir = fileURLToPath(new URL('../../examples/', import.meta.url))
const files = (await readdir(dir)).filter((f) => /\.(ya?ml|json)$/.test(f)).sort()

t.test('examples/ has every worked scenario of spec section 10 and the named cases', async (t) => {
  for (const id of ['t01', 't02', 't03', 't06', 't07', 't09', 't10', 't12', 't15', 't16', 't18', 't20', 't21', 't23', 't26', 't29', 't30', 't31', 't38', 't40'])
    t.ok(files.some((f) => f.startsWith(`${id}-`)), id)
  for (const f of ['crash-dump-before.yaml', 'crash-dump-after.yaml', 'io-mapping-driver-loop.yaml', 'guard-slot-warning-5.11.0.yaml', 'cve-2024-50222.yaml'])
    t.ok(files.includes(f), f)
})

for (const f of files) {
  t.test(f, async (t) => {
    const report = await runScenario(await readScenario(dir + f), localExecutor)
    t.ok(report.passed, formatRun(report).trimEnd())
    t.ok(report.steps.length > 0)
  })
}

const WRONG = `
name: wrong on purpose
machine: { arch: x86_32, cpus: 4, layout: { pkmapBase: '0xff800000', highmemStartPfn: 0x38000 } }
tasks: { T: { cpu: 2 } }
steps:
  - { op: kmap_local_page, pid: T, page: 0x40000, expect: { result: { addr: '0xfff9b000' } } }
  - op: kmap_local_page
    pid: T
    page: 0x40001
    expect: { state: { tasks.T: { kmapIdx: 2, kpte: { 1: { pfn: 0x40002 } } } } }
`

t.test('a wrong expectation fails with a readable diff', async (t) => {
  const report = await runScenario(parseScenario(WRONG), localExecutor)
  t.equal(report.passed, false)
  t.match(report.failure, { step: 2, path: 'expect.state.tasks.T.kpte.1.pfn', expected: 0x40002, got: 0x40001 })
  t.equal(
    formatRun(report),
    [
      'FAIL wrong on purpose',
      '  at step 2: kmap_local_page pid=T page=0x40001',
      '  expect.state.tasks.T.kpte.1.pfn:',
      '  - expected  262146',
      '  + got       262145',
      '',
    ].join('\n'),
  )
})
