// A bench baseline: the lab server as `npm start` runs it (same routes, validation, model,
// logging), except that its writer acknowledges every group at the next turn of the event
// loop and stores nothing. Its single-op figure is what everything but storage costs: the
// most that any design of the store could reach on this machine.
import { main } from '../src/server.js'
import type { Writer } from '../src/store/writer.js'

/** Group commit as ThreadWriter does it (one turn of the event loop per group), minus the writing. */
class AcknowledgingWriter implements Writer {
  private queue: (() => void)[] = []

  get pending(): number {
    return this.queue.length
  }

  commit(): Promise<void> {
    return new Promise((resolve) => {
      if (this.queue.push(resolve) > 1) return
      setImmediate(() => {
        const group = this.queue
        this.queue = []
        for (const settle of group) settle()
      })
    })
  }

  stage(): void {}
  discardStaged(): void {}

  flushEvents(): Promise<void> {
    return Promise.resolve()
  }

  remove(): Promise<void> {
    return Promise.resolve()
  }

  async close(): Promise<void> {}
}

await main(() => new AcknowledgingWriter())
