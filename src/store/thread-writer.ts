// Group commit on a writer thread. With `full` durability every commit ends in an fsync of the
// WAL, which takes milliseconds on real disks; done on the event loop it stalls every request
// for that long. Here a worker thread owns a second connection to the same file and runs the
// transactions, so the event loop keeps parsing, applying and queueing while the disk syncs.
//
// The guarantees are GroupWriter's: write sets handed in during one turn of the event loop
// share a transaction; a promise settles only when its transaction is committed (fsynced with
// `full`), and a failed transaction rejects every write set of it with StorageError. At most one
// transaction is in flight, so transactions commit in the order their write sets were handed
// in; what arrives while one is in flight forms the next group.
//
// Readers on the main connection see a transaction only once the worker has committed it, so
// nothing is visible before it is durable.
import { Worker } from 'node:worker_threads'
import type { Durability } from './db.js'
import type { EventRow, OpRow, WriteSet } from './repo.js'
import { sizes, StorageError, type Pending, type Writer, type WriterEvents } from './writer.js'

/**
 * A group as it crosses to the thread: one string and one array of numbers for all its write
 * sets, instead of thousands of small objects, which structured clone copies many times more
 * slowly. The strings are machine ids, statuses, event types and JSON texts (ops, events),
 * none of which can hold a raw newline, so they travel joined by '\n'. The rare parts (a new
 * machine and the history it copies, a checkpoint, an idempotency record) travel as they are.
 */
export interface PackedGroup {
  text: string
  nums: Float64Array
  extras: { index: number; newMachine?: WriteSet['newMachine']; copy?: WriteSet['copy']; checkpoint?: WriteSet['checkpoint']; idempotency?: WriteSet['idempotency'] }[]
}

export function pack(sets: readonly WriteSet[]): PackedGroup {
  let size = 0
  for (const ws of sets) size += 4 + 2 * ws.ops.length + 3 * ws.events.length
  const nums = new Float64Array(size)
  const text: string[] = []
  const extras: PackedGroup['extras'] = []
  let k = 0
  for (let index = 0; index < sets.length; index++) {
    const ws = sets[index]!
    text.push(ws.machineId, ws.head.status)
    nums[k++] = ws.head.opCount
    nums[k++] = ws.head.seq
    nums[k++] = ws.ops.length
    nums[k++] = ws.events.length
    for (const o of ws.ops) {
      nums[k++] = o.n
      nums[k++] = o.seqEnd
      text.push(o.op)
    }
    for (const e of ws.events) {
      nums[k++] = e.seq
      // NaN stands for null.
      nums[k++] = e.cpu ?? NaN
      nums[k++] = e.pid ?? NaN
      text.push(e.type, e.body)
    }
    if (ws.newMachine || ws.copy || ws.checkpoint || ws.idempotency) {
      extras.push({ index, newMachine: ws.newMachine, copy: ws.copy, checkpoint: ws.checkpoint, idempotency: ws.idempotency })
    }
  }
  return { text: text.join('\n'), nums, extras }
}

export function unpack(g: PackedGroup): WriteSet[] {
  const text = g.text.split('\n')
  const { nums } = g
  const sets: WriteSet[] = []
  let k = 0
  let t = 0
  const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x)
  while (k < nums.length) {
    const machineId = text[t++]!
    const status = text[t++]!
    const head = { opCount: nums[k++]!, seq: nums[k++]!, status }
    const nOps = nums[k++]!
    const nEvents = nums[k++]!
    const ops: OpRow[] = new Array(nOps)
    for (let i = 0; i < nOps; i++) ops[i] = { n: nums[k++]!, seqEnd: nums[k++]!, op: text[t++]! }
    const events: EventRow[] = new Array(nEvents)
    for (let i = 0; i < nEvents; i++) {
      events[i] = { seq: nums[k++]!, cpu: orNull(nums[k++]!), pid: orNull(nums[k++]!), type: text[t++]!, body: text[t++]! }
    }
    sets.push({ machineId, ops, events, head })
  }
  for (const { index, newMachine, copy, checkpoint, idempotency } of g.extras) {
    const ws = sets[index]!
    if (newMachine) ws.newMachine = newMachine
    if (copy) ws.copy = copy
    if (checkpoint) ws.checkpoint = checkpoint
    if (idempotency) ws.idempotency = idempotency
  }
  return sets
}

/** The writer thread stores waiting events with the next commit once there are this many... */
export const STORE_EVENTS_ROWS = 4000
/** ...or on their own once no commit has come for this long... */
export const STORE_EVENTS_IDLE_MS = 20
/** ...or at once when this many wait and no message is waiting for the thread. */
export const STORE_EVENTS_SOON_ROWS = 3000
/**
 * With a quota, a commit of the op log must leave this much room for the events that wait
 * (fewer than STORE_EVENTS_ROWS, ~190 bytes each with their index entries), so that a trace
 * can still be completed, and read, once writes are refused. A quarter of a small quota.
 */
export function eventsReserve(maxBytes: number): number {
  return Math.min(2 * 1024 * 1024, Math.floor(maxBytes / 4))
}

/**
 * main -> thread: `stage` writes into the open transaction (opening it), `discard` rolls it
 * back, `commit` ends it; `flush` asks for the waiting events to be stored; `remove` deletes a
 * machine between transactions.
 */
export type ToThread =
  | { kind: 'stage'; group: PackedGroup }
  | { kind: 'discard' }
  | { kind: 'commit'; group: PackedGroup }
  | { kind: 'flush' }
  | { kind: 'remove'; machineId: string }
  | { kind: 'close' }
/**
 * thread -> main. `stored` and `through` count groups: that many of the committed groups
 * have all their events in the events table. `events` is how many were written just now.
 */
export type FromThread =
  | { kind: 'committed'; seconds: number; stored: number; events: number }
  | { kind: 'failed'; code: string | undefined; message: string }
  | { kind: 'stored'; through: number; events: number }
  | { kind: 'storeFailed'; code: string | undefined; message: string }
  | { kind: 'removed'; machineId: string }
  | { kind: 'removeFailed'; machineId: string; code: string | undefined; message: string }
  | { kind: 'closed' }
  | { kind: 'ready' }
  | { kind: 'fatal'; message: string }

/** What the thread opens its own connection with (its workerData). */
export interface ThreadStore {
  file: string
  durability: Durability
  /** The size quota (openDb's maxBytes). SQLite keeps it per connection, so the thread's
   *  connection, which does the writing, must set it as well as the main one. */
  maxBytes?: number
}

export interface ThreadWriterOptions extends ThreadStore, WriterEvents {
  /**
   * The thread died or could not open the store. Its connection may still hold the write
   * lock and an in-flight transaction's outcome is unknown, so the store cannot be written
   * safely from this process any more: the server exits on this (a restart recovers the WAL).
   */
  onFatal?: (err: Error) => void
}

/** A failure the thread reported, with SQLite's code kept on its cause. */
function storageError(msg: { code: string | undefined; message: string }): StorageError {
  return new StorageError(Object.assign(new Error(msg.message), { code: msg.code }))
}

/** The thread's script: the built module, or when running from source a bootstrap that gives
 *  the thread the tsx loader first (loader hooks of the main thread do not reach workers). */
function threadScript(): { script: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { script: new URL('./writer-thread.js', import.meta.url), eval: false }
  const entry = new URL('./writer-thread.ts', import.meta.url).href
  const tsx = import.meta.resolve('tsx/esm/api')
  return { script: `const { register } = await import(${JSON.stringify(tsx)}); register(); await import(${JSON.stringify(entry)})`, eval: true }
}

export class ThreadWriter implements Writer {
  private queue: Pending[] = []
  private inFlight: Pending[] | null = null
  /** Parts staged since the last group was sent: they commit with the next one. */
  private staged: WriteSet[] = []
  private inFlightStaged: WriteSet[] = []
  private scheduled = false
  private broken: StorageError | null = null
  private closing = false
  private readonly worker: Worker
  private readonly exited: Promise<void>
  private drained: (() => void) | null = null
  /** Groups committed, and how many of them the thread reports with all their events stored. */
  private committedGroups = 0
  private storedThrough = 0
  private flushes: { through: number; resolve: () => void; reject: (err: unknown) => void }[] = []
  /** Removals asked and not answered, per machine in the order asked (the thread answers in order). */
  private removals = new Map<string, { resolve: () => void; reject: (err: unknown) => void }[]>()
  private markReady: () => void = () => {}
  /** Settles once the thread has opened the store, or rejects if it cannot: await it before serving. */
  readonly ready: Promise<void>

  constructor(private readonly opts: ThreadWriterOptions) {
    let failReady: (err: Error) => void = () => {}
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve
      failReady = reject
    })
    // Nobody may be waiting for it (tests of the writer alone); the failure also reaches onFatal.
    this.ready.catch(() => {})
    this.failReady = failReady
    const { script, eval: isEval } = threadScript()
    // No execArgv of ours: preloads (probes, coverage, loaders) are the main thread's business.
    const store: ThreadStore = { file: opts.file, durability: opts.durability, maxBytes: opts.maxBytes }
    this.worker = new Worker(script, { eval: isEval, execArgv: [], workerData: store })
    this.worker.unref()
    this.worker.on('message', (msg: FromThread) => this.onMessage(msg))
    this.worker.on('error', (err) => this.fail(err))
    this.exited = new Promise((resolve) => {
      this.worker.on('exit', (code) => {
        if (!this.closing || this.inFlight) this.fail(new Error(`writer thread exited with code ${code}`))
        resolve()
      })
    })
  }

  get pending(): number {
    return this.queue.length + (this.inFlight?.length ?? 0)
  }

  commit(ws: WriteSet): Promise<void> {
    if (this.broken) return Promise.reject(this.broken)
    return new Promise((resolve, reject) => {
      this.queue.push({ ws, resolve, reject })
      if (!this.inFlight && !this.scheduled) {
        this.scheduled = true
        // As in GroupWriter: what arrives in this turn of the event loop joins the group.
        setImmediate(() => {
          this.scheduled = false
          this.send()
        })
      }
    })
  }

  /**
   * Posted at once: the thread writes it into its open transaction while the caller goes on.
   * Any group the thread commits next carries it, and the caller's commit() is queued before
   * that group can be sent (both happen in one synchronous run, and groups are sent from
   * callbacks), so the part commits with the rest of its write set. After a failure the
   * thread refuses the next group as a whole.
   */
  stage(ws: WriteSet): void {
    if (this.broken) return
    this.staged.push(ws)
    const packed = pack([ws])
    this.worker.ref()
    this.worker.postMessage({ kind: 'stage', group: packed } satisfies ToThread, [packed.nums.buffer as ArrayBuffer])
  }

  /** Nothing but staged parts can be in the thread's open transaction now: roll it back. */
  discardStaged(): void {
    if (this.broken || this.staged.length === 0) return
    this.staged = []
    this.worker.postMessage({ kind: 'discard' } satisfies ToThread)
  }

  flushEvents(): Promise<void> {
    if (this.broken) return Promise.reject(this.broken)
    const through = this.committedGroups
    if (this.storedThrough >= through) return Promise.resolve()
    return new Promise((resolve, reject) => {
      // One request covers every waiter: the thread answers once it has stored them all.
      if (this.flushes.length === 0) {
        this.worker.ref()
        this.worker.postMessage({ kind: 'flush' } satisfies ToThread)
      }
      this.flushes.push({ through, resolve, reject })
    })
  }

  remove(machineId: string): Promise<void> {
    if (this.broken) return Promise.reject(this.broken)
    return new Promise((resolve, reject) => {
      this.removals.set(machineId, [...(this.removals.get(machineId) ?? []), { resolve, reject }])
      this.worker.ref()
      this.worker.postMessage({ kind: 'remove', machineId } satisfies ToThread)
    })
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true
      if (this.pending > 0 && !this.broken) {
        await new Promise<void>((resolve) => {
          this.drained = resolve
          if (!this.inFlight) this.send()
        })
      }
      this.worker.ref()
      this.worker.postMessage({ kind: 'close' } satisfies ToThread)
    }
    await this.exited
  }

  private send(): void {
    if (this.inFlight || this.queue.length === 0 || this.broken) return
    const group = this.queue
    this.queue = []
    this.inFlight = group
    this.inFlightStaged = this.staged
    this.staged = []
    // Keep the process alive while a transaction is out; an idle writer must not.
    this.worker.ref()
    const packed = pack(group.map((p) => p.ws))
    this.worker.postMessage({ kind: 'commit', group: packed } satisfies ToThread, [packed.nums.buffer as ArrayBuffer])
  }

  private onMessage(msg: FromThread): void {
    if (msg.kind === 'closed') return
    if (msg.kind === 'ready') return this.markReady()
    if (msg.kind === 'fatal') return this.fail(new Error(msg.message))
    if (msg.kind === 'stored') {
      if (msg.events > 0) this.opts.onEventsStored?.(msg.events)
      return this.eventsStoredThrough(msg.through, true)
    }
    if (msg.kind === 'removed' || msg.kind === 'removeFailed') {
      const asked = this.removals.get(msg.machineId) ?? []
      const removal = asked.shift()
      if (asked.length === 0) this.removals.delete(msg.machineId)
      if (msg.kind === 'removed') removal?.resolve()
      else removal?.reject(storageError(msg))
      return this.unrefWhenIdle()
    }
    if (msg.kind === 'storeFailed') {
      const waiting = this.flushes
      this.flushes = []
      for (const f of waiting) f.reject(storageError(msg))
      return this.unrefWhenIdle()
    }
    const group = this.inFlight
    if (!group) return
    const staged = this.inFlightStaged
    this.inFlight = null
    this.inFlightStaged = []
    if (msg.kind === 'committed') {
      this.committedGroups++
      this.opts.onCommit?.({
        seconds: msg.seconds,
        writeSets: group.length,
        ...sizes(staged, group),
      })
      if (msg.events > 0) this.opts.onEventsStored?.(msg.events)
      this.eventsStoredThrough(msg.stored, false)
      for (const p of group) p.resolve()
    } else {
      const failure = storageError(msg)
      for (const p of group) p.reject(failure)
    }
    // The next group is what queued up meanwhile: send it now, the disk is free.
    this.send()
    if (!this.inFlight && this.drained && this.queue.length === 0) this.drained()
    this.unrefWhenIdle()
  }

  /** `reported` is the thread's answer to a flush (or its own store): waiters it left behind ask again. */
  private eventsStoredThrough(through: number, reported: boolean): void {
    this.storedThrough = Math.max(this.storedThrough, through)
    if (this.flushes.length === 0) return
    const done = this.flushes.filter((f) => f.through <= this.storedThrough)
    this.flushes = this.flushes.filter((f) => f.through > this.storedThrough)
    for (const f of done) f.resolve()
    // They wait for commits acknowledged after the thread answered.
    if (reported && this.flushes.length > 0) this.worker.postMessage({ kind: 'flush' } satisfies ToThread)
    this.unrefWhenIdle()
  }

  /** Keep the process alive while a transaction, a flush or a removal is out; an idle writer must not. */
  private unrefWhenIdle(): void {
    if (!this.inFlight && this.flushes.length === 0 && this.removals.size === 0) this.worker.unref()
  }

  private readonly failReady: (err: Error) => void

  private fail(err: Error): void {
    if (this.broken) return
    this.failReady(err)
    this.broken = new StorageError(err)
    const lost = [...(this.inFlight ?? []), ...this.queue, ...this.flushes, ...[...this.removals.values()].flat()]
    this.inFlight = null
    this.queue = []
    this.flushes = []
    this.removals.clear()
    for (const p of lost) p.reject(this.broken)
    this.drained?.()
    if (!this.closing) this.opts.onFatal?.(err)
  }
}
