// convert-check on the examples: the crash-dump copy now faults in (unsafe); per-CPU data
// in a kmap_atomic section becomes preemptible (unsafe); the io-mapping loop converts
// plainly (safe, no divergence); sleeping in an atomic section loses its splat (safe, changed).
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { convertScenario } from '../../src/scenario/convert.js'
import { convertCheck } from '../../src/scenario/convert-check.js'
import { readScenario } from '../../src/scenario/format.js'
import { localExecutor } from '../../src/scenario/local.js'
import { formatConvertCheck } from '../../src/scenario/report.js'

const dir = fileURLToPath(new URL('../../examples/', import.meta.url))
const check = async (f: string) => convertCheck(await readScenario(dir + f), localExecutor)

t.test('the conversion renames each atomic op and drops expectations', async (t) => {
  const s = await readScenario(dir + 'crash-dump-before.yaml')
  const c = convertScenario(s)
  t.strictSame(c.steps, [1, 4])
  t.strictSame(c.scenario.steps.map((x) => x.op?.op), ['kmap_local_pfn', 'access', 'copy_to_user', 'kunmap_local', 'copy_to_user'])
  t.ok(c.scenario.steps.every((x) => x.expect === null))
  t.equal(s.steps[0]!.op!.op, 'kmap_atomic_pfn', 'the original is untouched')
})

t.test('crash dump before: the user copy now faults in and may sleep -> unsafe', async (t) => {
  const r = await check('crash-dump-before.yaml')
  t.equal(r.safe, false)
  t.strictSame(r.conversions, [
    { step: 1, from: 'kmap_atomic_pfn', to: 'kmap_local_pfn' },
    { step: 4, from: 'kunmap_atomic', to: 'kunmap_local' },
  ])
  t.strictSame(r.divergences.map((d) => [d.step, d.kind, d.severity]), [[3, 'user_copy_faults_in', 'unsafe']])
  t.strictSame([r.divergences[0]!.asWritten, r.divergences[0]!.converted], [{ notCopied: 4096 }, { notCopied: 0 }])
  t.match(formatConvertCheck(r), /UNSAFE\n.*\n  step 3 \[unsafe\] user_copy_faults_in: the user copy now faults the page in and may sleep/)
})

t.test('crash dump after: already kmap_local, nothing to convert -> safe', async (t) => {
  const r = await check('crash-dump-after.yaml')
  t.match(r, { safe: true, conversions: [], divergences: [] })
})

t.test('per-CPU data in a kmap_atomic section -> unsafe: preemptible, and preempted', async (t) => {
  const r = await check('percpu-stats-in-atomic.yaml')
  t.equal(r.safe, false)
  const kinds = r.divergences.map((d) => [d.step, d.kind, d.severity])
  t.match(kinds, [
    [2, 'preemptible_per_cpu', 'unsafe'],
    [4, 'preempted_in_section', 'unsafe'],
  ])
  t.ok(r.divergences.filter((d) => d.step > 4).every((d) => d.kind === 'refusal'), 'afterwards A is no longer running')
})

t.test('a preemption inside a section without per-CPU data is only a change', async (t) => {
  const s = await readScenario(dir + 'percpu-stats-in-atomic.yaml')
  s.steps = s.steps.slice(0, 4).map((x) => ({ ...x, perCpu: false, op: x.op?.op === 'smp_processor_id' ? { op: 'access', pid: 'A', addr: '0xfffbb000' } : x.op }))
  const r = await convertCheck(s, localExecutor)
  t.equal(r.safe, true)
  t.strictSame(r.divergences.map((d) => [d.step, d.kind, d.severity]), [[4, 'preempted_in_section', 'changed']])
})

t.test('io-mapping driver loop: a plain conversion -> safe, no divergence', async (t) => {
  const r = await check('io-mapping-driver-loop.yaml')
  t.equal(r.safe, true)
  t.equal(r.conversions.length, 8)
  t.strictSame(r.divergences, [])
})

t.test('might_sleep inside kmap_atomic: the splat disappears -> safe, behaviour changed', async (t) => {
  const r = await check('t06-kmap-atomic-might-sleep.yaml')
  t.equal(r.safe, true)
  t.strictSame(r.divergences.map((d) => [d.step, d.kind, d.severity]), [[2, 'sleep_splat_disappears', 'changed']])
})

t.test('CVE-2024-50222: kmap_local keeps the bug (same W4, same wrong page) -> no divergence', async (t) => {
  const r = await check('cve-2024-50222.yaml')
  t.match(r, { safe: true, divergences: [] })
})
