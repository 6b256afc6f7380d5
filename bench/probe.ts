// Preloaded into a server child (`--import ./bench/probe.ts`) so that the benchmarks and the
// soak can read the server's own event-loop delay and RSS without a hook in src/: the parent
// asks over the IPC channel and gets the figures for the interval since its last question.
import { monitorEventLoopDelay } from 'node:perf_hooks'

export interface ProbeReply {
  rssMiB: number
  heapUsedMiB: number
  /** Event-loop delay over the interval since the previous probe, in ms. */
  lagP99Ms: number
  lagMaxMs: number
}

const delay = monitorEventLoopDelay({ resolution: 10 })
delay.enable()

process.on('message', (msg: { probe?: boolean; gc?: boolean }) => {
  if (!msg?.probe) return
  // With --expose-gc, a figure taken after a full collection measures what is held, not garbage.
  if (msg.gc) (globalThis as { gc?: () => void }).gc?.()
  const mem = process.memoryUsage()
  const reply: ProbeReply = {
    rssMiB: mem.rss / 2 ** 20,
    heapUsedMiB: mem.heapUsed / 2 ** 20,
    lagP99Ms: delay.percentile(99) / 1e6,
    lagMaxMs: delay.max / 1e6,
  }
  delay.reset()
  process.send!(reply)
})
// The IPC channel must not keep a server alive that is otherwise shutting down.
process.channel?.unref()
