// Publishes committed events to in-process subscribers (the WebSocket stream, dashboards).
// Each subscriber has its own filter and a bounded queue drained at the listener's pace: a
// listener that falls more than `maxQueued` events behind gets one final `lagged` message
// naming the last seq it received, and is dropped, so memory never grows with a slow client.
import type { SimEvent } from './model.js'

export interface EventFilter {
  types?: readonly string[]
  cpus?: readonly number[]
  pids?: readonly number[]
}

export type HubMessage =
  | { kind: 'events'; events: SimEvent[] }
  | { kind: 'lagged'; resumeAfter: number }
  | { kind: 'deleted' }

/** May return a promise to make the hub wait before handing it more (backpressure). */
export type Listener = (msg: HubMessage) => void | Promise<void>

export function matches(filter: EventFilter, e: SimEvent): boolean {
  return (
    (!filter.types?.length || filter.types.includes(e.type)) &&
    (!filter.cpus?.length || filter.cpus.includes(e.cpu ?? -1)) &&
    (!filter.pids?.length || filter.pids.includes(e.pid ?? -1))
  )
}

class Subscription {
  private queue: SimEvent[] = []
  private draining = false
  /** Highest seq handed to the listener, or that the filter skipped: where a resume starts. */
  private delivered = 0
  closed = false
  /** No filter: every event is taken, so a batch is copied whole instead of tested one by one. */
  private readonly takesAll: boolean

  constructor(
    readonly machineId: string,
    private readonly filter: EventFilter,
    private readonly listener: Listener,
    private readonly maxQueued: number,
    private readonly onClose: (s: Subscription) => void,
  ) {
    this.takesAll = !filter.types?.length && !filter.cpus?.length && !filter.pids?.length
  }


  push(events: readonly SimEvent[]): void {
    if (this.closed) return
    if (this.takesAll && this.queue.length === 0) this.queue = events.slice()
    else for (const e of events) if (matches(this.filter, e)) this.queue.push(e)
    if (this.queue.length > this.maxQueued) {
      this.end({ kind: 'lagged', resumeAfter: this.delivered })
      return
    }
    if (this.queue.length === 0) {
      this.delivered = Math.max(this.delivered, events.at(-1)?.seq ?? 0)
      return
    }
    if (!this.draining) void this.drain()
  }

  private async drain(): Promise<void> {
    this.draining = true
    try {
      while (this.queue.length > 0 && !this.closed) {
        const batch = this.queue
        this.queue = []
        this.delivered = batch.at(-1)!.seq
        await this.listener({ kind: 'events', events: batch })
      }
    } catch {
      // A listener that throws has gone away (closed socket); stop feeding it.
      this.close()
    } finally {
      this.draining = false
    }
  }

  /** Closes with a last message, which the listener gets even if it is still busy. */
  end(last: HubMessage): void {
    if (this.closed) return
    this.queue = []
    this.close()
    try {
      void Promise.resolve(this.listener(last)).catch(() => {})
    } catch {
      // The listener has gone away; there is nobody left to tell.
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.onClose(this)
  }
}

export interface Unsubscribe {
  (): void
}

export class Hub {
  private readonly byMachine = new Map<string, Set<Subscription>>()
  private count = 0

  constructor(private readonly maxQueued = 10_000) {}

  get subscribers(): number {
    return this.count
  }

  subscribe(machineId: string, filter: EventFilter, listener: Listener): Unsubscribe {
    const sub = new Subscription(machineId, filter, listener, this.maxQueued, (s) => this.remove(s))
    let set = this.byMachine.get(machineId)
    if (!set) this.byMachine.set(machineId, (set = new Set()))
    set.add(sub)
    this.count++
    return () => sub.close()
  }

  /** Whether anyone subscribes to the machine (publishing costs nothing to gather otherwise). */
  watching(machineId: string): boolean {
    return this.byMachine.has(machineId)
  }

  /** Called by the service only after the events are committed. */
  publish(machineId: string, events: readonly SimEvent[]): void {
    const set = this.byMachine.get(machineId)
    if (!set || events.length === 0) return
    for (const sub of set) sub.push(events)
  }

  /** A deleted machine ends its streams, each with a last `deleted` message. */
  closeMachine(machineId: string): void {
    for (const sub of this.byMachine.get(machineId) ?? []) sub.end({ kind: 'deleted' })
  }

  private remove(sub: Subscription): void {
    const set = this.byMachine.get(sub.machineId)
    if (!set?.delete(sub)) return
    this.count--
    if (set.size === 0) this.byMachine.delete(sub.machineId)
  }
}
