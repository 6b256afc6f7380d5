// Each trace format parsed back: JSONL lines are the events with consecutive seq; the
// Perfetto file is one JSON document with traceEvents first and well-formed trace events;
// every ftrace line is a header comment or matches the kernel's line and field formats.
import t from 'tap'
import { encodeFtrace, encodeJsonl, encodePerfetto, exportTrace, TRACE_FORMATS } from '../../src/export/index.js'
import { TASK_TID_BASE } from '../../src/export/perfetto.js'
import type { EventSource } from '../../src/export/source.js'
import { sampleTrace } from './fixtures/traces.js'

async function text(chunks: AsyncIterable<string>): Promise<string> {
  let s = ''
  for await (const c of chunks) s += c
  return s
}

const trace = sampleTrace()

t.test('the sample trace covers what the encoders special-case', async (t) => {
  const types = new Set(trace.map((e) => e.type))
  for (const ty of ['sched_switch', 'kmap', 'kunmap', 'pkmap_map', 'pkmap_unmap', 'irq_enter', 'diagnostic', 'fault', 'halt', 'task_fork'])
    t.ok(types.has(ty), `has ${ty}`)
  t.ok(trace.some((e) => e.type === 'sched_switch' && e.nextPid === null), 'the stopper appears')
  t.ok(trace.some((e) => e.type === 'kmap' && e.pid === null), 'a kmap in interrupt context')
})

t.test('jsonl: one contract event per line, seq consecutive', async (t) => {
  const out = await text(encodeJsonl(trace))
  t.ok(out.endsWith('\n'))
  const lines = out.slice(0, -1).split('\n')
  t.equal(lines.length, trace.length)
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  parsed.forEach((e, i) => {
    if (e.seq !== i + 1) t.fail(`line ${i + 1} has seq ${String(e.seq)}`)
  })
  t.strictSame(parsed, JSON.parse(JSON.stringify(trace)), 'lines are the events unchanged')
})

t.test('perfetto: a JSON document with traceEvents first and well-formed events', async (t) => {
  const out = await text(encodePerfetto(trace, { pid: 42 }))
  t.ok(out.startsWith('{"traceEvents":['), 'starts with traceEvents')
  const doc = JSON.parse(out) as { traceEvents: Record<string, unknown>[] }
  t.equal(Object.keys(doc)[0], 'traceEvents', 'traceEvents is the first key')
  const evs = doc.traceEvents
  const bad = evs.filter(
    (e) =>
      typeof e.ph !== 'string' || typeof e.ts !== 'number' || e.pid !== 42 || typeof e.tid !== 'number' || typeof e.name !== 'string',
  )
  t.strictSame(bad, [], 'every event has name, ph, ts, pid (the machine) and tid')
  t.ok(evs.every((e) => ['M', 'X', 'B', 'E', 'b', 'e', 'C', 'i'].includes(e.ph as string)), 'only known phases')
  t.match(evs[0], { ph: 'M', name: 'process_name', args: { name: 'kmaplab machine 42' } }, 'one process per machine')
  const threadNames = evs.filter((e) => e.name === 'thread_name').map((e) => [e.tid, (e.args as { name: string }).name])
  t.ok(threadNames.some(([tid, n]) => tid === 1 && n === 'CPU 1'), 'a track per CPU, tid = CPU')
  t.equal(new Set(threadNames.map(([tid]) => tid)).size, threadNames.length, 'each track named once')

  const slices = evs.filter((e) => e.ph === 'X')
  t.ok(slices.every((e) => typeof e.dur === 'number' && (e.dur as number) >= 0), 'X slices have a duration')
  const cpu1 = slices.filter((e) => e.tid === 1).map((e) => e.name)
  t.ok(['swapper/1-0', 'A-1', 'B-2', 'migration/1'].every((n) => cpu1.includes(n)), `task slices on CPU 1: ${cpu1.join(', ')}`)

  // Per task track, B/E must balance like a stack and never go below zero.
  const depth = new Map<number, number>()
  for (const e of evs) {
    if (e.ph !== 'B' && e.ph !== 'E') continue
    const tid = e.tid as number
    t.ok(tid > TASK_TID_BASE, 'mapping slices live on task tracks')
    const d = (depth.get(tid) ?? 0) + (e.ph === 'B' ? 1 : -1)
    if (d < 0) t.fail(`E without B on ${tid}`)
    depth.set(tid, d)
  }
  t.ok([...depth.values()].every((d) => d === 0), 'every mapping slice is closed (still-mapped ones at the end)')
  const maps = evs.filter((e) => e.ph === 'B').map((e) => e.name)
  t.ok(maps.includes('kmap_local_page 0x40000'), 'named by api and pfn')
  const asyncIds = evs.filter((e) => e.ph === 'b').map((e) => e.id)
  t.strictSame(evs.filter((e) => e.ph === 'e').map((e) => e.id).sort(), [...asyncIds].sort(), 'async (pool, shortcut) slices end')
  t.ok(evs.some((e) => e.ph === 'C' && e.name === 'live local slots CPU 1'), 'slot counter per CPU')
  t.ok(evs.some((e) => e.ph === 'C' && e.name === 'pkmap pool'), 'pool occupancy counter')
  const instants = evs.filter((e) => e.ph === 'i').map((e) => e.name)
  t.ok(['S2', 'W4', 'W9', 'B2', 'fault', 'halt'].every((n) => instants.includes(n)), `instants: ${instants.join(', ')}`)
  t.ok(evs.filter((e) => e.ph === 'i').every((e) => e.s === 't' || e.s === 'g'), 'instants are scoped')
  const last = trace[trace.length - 1]!
  t.ok(evs.every((e) => (e.ts as number) <= last.ts / 1000), 'microseconds of simulated time')
})

// The kernel's trace_print_context: "%16s-%-7d [%03d] " + 5 latency flags + " %5lu.%06lu: ".
const CONTEXT = String.raw`^ *\S.*-\d+ +\[\d{3}\] [d.][Nn.][Hhs.][0-9a-f.][0-9.] +\d+\.\d{6}: `
const SCHED_SWITCH = new RegExp(
  CONTEXT +
    String.raw`sched_switch: prev_comm=\S+ prev_pid=\d+ prev_prio=\d+ prev_state=(R|R\+|S|D|Z|X) ==> next_comm=\S+ next_pid=\d+ next_prio=\d+$`,
)
const MARK = new RegExp(CONTEXT + String.raw`tracing_mark_write: [a-z_]+( [A-Za-z]+=\S.*)? seq=\d+$`)

t.test('ftrace: a "# tracer:" header, then lines in the kernel format', async (t) => {
  const out = await text(encodeFtrace(trace))
  const lines = out.split('\n')
  t.equal(lines.pop(), '', 'ends with a newline')
  t.equal(lines[0], '# tracer: nop')
  const body = lines.filter((l) => !l.startsWith('#'))
  t.equal(body.length, trace.length, 'one line per event')
  const bad = body.filter((l) => !SCHED_SWITCH.test(l) && !MARK.test(l))
  t.strictSame(bad, [], 'every line matches its format')
  const switches = body.filter((l) => l.includes(': sched_switch: '))
  t.equal(switches.length, trace.filter((e) => e.type === 'sched_switch').length)
  t.ok(switches.some((l) => /^ +<idle>-0 +\[001\] .{5} +\d+\.\d{6}: sched_switch: prev_comm=swapper\/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=A next_pid=1 next_prio=120$/.test(l)), 'idle is <idle>-0 in the column, swapper/N in the fields')
  t.ok(switches.some((l) => /prev_comm=A prev_pid=1 prev_prio=120 prev_state=R ==> next_comm=migration\/1 next_pid=\d+ next_prio=0$/.test(l)), 'the stopper is migration/N at prio 0')
  t.ok(switches.some((l) => /prev_comm=B prev_pid=2 prev_prio=120 prev_state=D ==>/.test(l)), 'a sleep is D')
  const kmap = body.find((l) => l.includes('tracing_mark_write: kmap pid=1 api=kmap_local_page'))
  t.match(kmap, /^ +A-1 +\[001\] \.\.\.\.\. +\d+\.\d{6}: tracing_mark_write: kmap pid=1 api=kmap_local_page addr=0xfffab000 pfn=0x40000 slot=0 fixIdx=84 seq=\d+$/)
  t.ok(body.some((l) => / d\.h\.\. .*tracing_mark_write: kmap api=kmap_local_page .* task=2 /.test(l)), 'interrupt context: irqs off, hardirq; the interrupted task named')
  t.ok(body.some((l) => /tracing_mark_write: diagnostic pid=2 id=S2 kind=SCHED message="BUG: sleeping function called from invalid context.*\\n/.test(l)), 'a multi-line message stays on one line')
})

t.test('exportTrace streams each format in bounded chunks', async (t) => {
  for (const format of TRACE_FORMATS) {
    const chunks: string[] = []
    for await (const c of exportTrace(format, trace as EventSource, { machinePid: 1 })) chunks.push(c)
    t.ok(chunks.length >= 1, `${format}: chunks`)
    t.ok(chunks.every((c) => c.length < 64 * 1024 + 4096), `${format}: each about 64 KiB at most`)
  }
})
