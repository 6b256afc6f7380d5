// A 1-million-event trace streams through every format with bounded memory. The events are
// made lazily by a live machine and the output is counted and dropped, in a child process
// (see fixtures/stream-memory.ts). Holding the trace or its text would take hundreds of MB;
// the encoders keep only small maps keyed by task, CPU and pool slot.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const EVENTS = 1_000_000
/** Far below the trace itself: 1M events are ~100 MiB of JSON text. */
const MAX_GROWTH = 16 * 1024 * 1024

interface Figures {
  format: string
  events: number
  bytes: number
  peakHeapGrowth: number
  seconds: number
}

t.test(`${EVENTS} events through each encoder, heap bounded`, async (t) => {
  const script = fileURLToPath(new URL('./fixtures/stream-memory.ts', import.meta.url))
  // Without tap's coverage collection, which would slow the child and add to its heap.
  const { NODE_V8_COVERAGE: _coverage, ...env } = process.env
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', script, String(EVENTS)], {
    maxBuffer: 1 << 20,
    env,
  })
  const figures = JSON.parse(stdout) as Figures[]
  t.strictSame(figures.map((f) => f.format), ['jsonl', 'perfetto', 'ftrace'])
  for (const f of figures) {
    t.equal(f.events, EVENTS, `${f.format}: every event read`)
    t.ok(f.bytes > 50 * 2 ** 20, `${f.format}: ${(f.bytes / 2 ** 20).toFixed(0)} MiB written`)
    t.ok(
      f.peakHeapGrowth < MAX_GROWTH,
      `${f.format}: heap grew at most ${(f.peakHeapGrowth / 2 ** 20).toFixed(1)} MiB (${f.seconds.toFixed(1)} s)`,
    )
  }
})
