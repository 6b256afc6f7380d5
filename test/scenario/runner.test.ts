// The scenario format and runner rules of docs/scenarios.md, one by one.
import t from 'tap'
import { OpRefusal, type Executor } from '../../src/scenario/executor.js'
import { parseScenario, ScenarioFormatError } from '../../src/scenario/format.js'
import { localExecutor } from '../../src/scenario/local.js'
import { firstDifference } from '../../src/scenario/match.js'
import { formatRun } from '../../src/scenario/report.js'
import { runScenario } from '../../src/scenario/run.js'

const M = `machine: { arch: x86_32, cpus: 4, layout: { pkmapBase: '0xff800000', highmemStartPfn: 0x38000 } }`
const run = (steps: string, tasks = 'tasks: { A: { cpu: 1 }, B: { cpu: 1 } }') =>
  runScenario(parseScenario(`name: s\n${M}\n${tasks}\nsteps:\n${steps}`), localExecutor)

t.test('format errors name the path', async (t) => {
  const bad: [string, RegExp][] = [
    ['name: x\nmachine: {}\nsteps: []', /steps: required/],
    ['name: x\nmachine: {}\nsteps: [{ pid: 1 }]', /steps\[1\]\.op: must name the op/],
    ['name: x\nmachine: {}\nsteps: [{ op: schedule, expect: { bogus: 1 } }]', /steps\[1\]\.expect\.bogus: unknown key/],
    ['name: x\nmachine: {}\nsteps: [{ op: schedule, expect: { diagnostics: W4 } }]', /diagnostics: must be a list/],
    ['name: x\nmachine: {}\ntasks: { "12": {} }\nsteps: [{ op: schedule }]', /tasks\.12: a task name cannot be a number/],
    ['name: x\nmachine: {}\nsteps: [{ op: a, x: [ }', /not valid YAML/],
  ]
  for (const [text, re] of bad) t.throws(() => parseScenario(text, 'f.yaml'), re)
  t.throws(() => parseScenario('name: x\nmachine: {}\nsteps: []', 'f.yaml'), ScenarioFormatError)
})

t.test('task names stand for pids in ops, keys and values; spawn and fork add names', async (t) => {
  const r = await run(`
  - { op: fork, pid: A, name: kid, expect: { result: { pid: kid } } }
  - op: preempt
    cpu: 1
    expect: { state: { cpus.1: { current: B, runqueue: [kid, A] }, tasks: { A: { state: runnable }, kid: { cpu: 1 } } } }
  - { op: spawn, name: C, cpu: 3 }
  - { op: kmap_local_page, pid: C, page: 0x40000, expect: { result: { addr: 0xfff8b000 } } }
  - { expect: { state: { tasks.C.kpte.0.pfn: 0x40000, fixmap: { 116: { cpu: 3 }, 117: null } } } }`)
  t.ok(r.passed, formatRun(r))
  t.strictSame(r.tasks, { A: 1, B: 2, kid: 3, C: 4 })
})

t.test('an unknown task name is a format error of that step', async (t) => {
  await t.rejects(run('  - { op: sleep, pid: Z }'), /steps\[1\]\.pid: unknown task name "Z"; known: A, B/)
})

t.test('refusals: expected codes pass, unexpected ones fail, a missing one fails', async (t) => {
  t.ok((await run('  - { op: sleep, pid: B, expect: { error: not_running } }')).passed)
  t.ok((await run('  - { op: sleep, pid: A, bogus: 1, expect: { error: invalid_op } }')).passed)
  const r = await run('  - { op: sleep, pid: B }')
  t.match(r.failure, { step: 1, path: 'error', got: { code: 'not_running' } })
  const r2 = await run('  - { op: sleep, pid: A, expect: { error: not_running } }')
  t.match(r2.failure, { path: 'expect.error', expected: 'not_running' })
})

t.test('diagnostics: fired in the step, none, not these', async (t) => {
  const steps = `
  - { op: kmap_local_page, pid: A, page: 0x40000 }
  - { op: kmap_local_page, pid: A, page: 0x40001 }
  - { op: kunmap_local, pid: A, addr: 0xfffab000, expect: { diagnostics: [W4], notDiagnostics: [B2] } }
  - { op: kunmap_local, pid: A, addr: 0xfffab000, expect: { noDiagnostics: true } }`
  t.ok((await run(steps)).passed)
  const r = await run(steps.replace('diagnostics: [W4]', 'diagnostics: [W3]'))
  t.match(r.failure, { step: 3, path: 'expect.diagnostics', expected: ['W3'], got: ['W4'] })
  const r2 = await run(steps.replace('notDiagnostics: [B2]', 'notDiagnostics: [W4]'))
  t.match(r2.failure, { step: 3, path: 'expect.notDiagnostics' })
})

t.test('smp_processor_id is answered by the runner and marks per-CPU use', async (t) => {
  const r = await run('  - { op: smp_processor_id, pid: A, expect: { result: { cpu: 1 } } }\n  - { op: smp_processor_id, pid: B, expect: { error: not_running } }')
  t.ok(r.passed, formatRun(r))
  t.equal(r.steps[0]!.perCpu, true)
})

t.test('matching rules', async (t) => {
  const names = new Map([['T', 7]])
  const doc = { tasks: [{ pid: 7, kpte: [{ slot: 0, pfn: 5 }] }], addr: '0xfff9b000', list: [1, 2] }
  t.equal(firstDifference({ 'tasks.T.kpte.0.pfn': 5, addr: 0xfff9b000 }, doc, 'state', names), null)
  t.equal(firstDifference({ tasks: { 8: null } }, doc, 'state', names), null, 'null: no such element')
  t.match(firstDifference({ tasks: { T: null } }, doc, 'state', names), { path: 'state.tasks.T', expected: null })
  t.match(firstDifference({ list: [1] }, doc, 'state', names), { path: 'state.list', got: [1, 2] }, 'lists match whole')
  t.match(firstDifference({ addr: '0xFFF9B001' }, doc, 'state', names), { path: 'state.addr' })
})

t.test('the runner only needs the Executor interface', async (t) => {
  const seen: unknown[] = []
  const fake: Executor = {
    async apply(op) {
      seen.push(op)
      if (op.op === 'sleep') throw new OpRefusal('task_blocked', 'no')
      return { result: { pid: 5 }, events: [] }
    },
    async state() {
      return { tasks: [{ pid: 5, name: 'X' }] } as never
    },
  }
  const s = parseScenario(`name: fake\nmachine: {}\ntasks: { X: {} }\nsteps:\n  - { op: sleep, pid: X, expect: { error: task_blocked } }\n  - { expect: { state: { tasks.X.name: X } } }`)
  const r = await runScenario(s, async () => fake)
  t.ok(r.passed, formatRun(r))
  t.strictSame(seen, [{ op: 'spawn', name: 'X' }, { op: 'sleep', pid: 5 }])
})
