// Group commit: write sets handed in during one turn of the event loop share one
// transaction, and every caller's promise settles only once that transaction is durable.
import type { Repo, WriteSet } from './repo.js'

/** A commit failed in SQLite (disk full, I/O error, ...): nothing of the group was written. */
export class StorageError extends Error {
  constructor(override readonly cause: unknown) {
    super(`storage error: ${(cause as { code?: string }).code ?? (cause as Error).message}`)
    this.name = 'StorageError'
  }
}

export interface CommitStats {
  seconds: number
  writeSets: number
  ops: number
  /** Events the commit's write sets carried (stored with it, or soon after: see Writer.flushEvents). */
  events: number
}

/** What a writer reports as it works; metrics listen. */
export interface WriterEvents {
  onCommit?: (stats: CommitStats) => void
  /** `n` events were written to the events table. */
  onEventsStored?: (n: number) => void
}

/** What the service needs of a writer: group commit with a promise per write set. */
export interface Writer {
  /** Settles once `ws` is committed (durably, at the store's durability), or rejects with StorageError. */
  commit(ws: WriteSet): Promise<void>
  /**
   * Hands in an early part of a large write set so that it can be written while the caller
   * computes the rest. A staged part is committed only together with the next `commit()`
   * (the same transaction), and fails with it: a client never sees a prefix of its batch
   * committed without the rest (an idempotent retry would otherwise apply the prefix twice).
   * Stage and commit within one synchronous run of the caller: no other commit may start
   * between them.
   */
  stage(ws: WriteSet): void
  /** Drops what was staged since the last commit(), in the same synchronous run. */
  discardStaged(): void
  /**
   * The op log is the source of truth and a commit makes it durable; the events the ops
   * determine may reach the events table a little later. This settles once the events of
   * every commit settled so far are stored, so that a read of the trace sees them, or
   * rejects with StorageError if they cannot be written.
   */
  flushEvents(): Promise<void>
  /**
   * Deletes a machine and everything stored of it, in a transaction of its own (which may use
   * the whole size quota: it frees room), dropping any of its events still waiting to be
   * stored. Settles once that is committed, or rejects with StorageError. The caller makes
   * sure that no write set of the machine is pending or arrives meanwhile.
   */
  remove(machineId: string): Promise<void>
  /** Write sets handed in and not yet settled. */
  readonly pending: number
  /** Commits whatever is queued, then stops (shutdown). */
  close(): Promise<void>
}

export interface Pending {
  ws: WriteSet
  resolve: () => void
  reject: (err: unknown) => void
}

/** The ops and events a committed transaction carried, staged parts included. */
export function sizes(staged: readonly WriteSet[], group: readonly { ws: WriteSet }[]): { ops: number; events: number } {
  let ops = 0
  let events = 0
  for (const ws of staged) (ops += ws.ops.length), (events += ws.events.length)
  for (const { ws } of group) (ops += ws.ops.length), (events += ws.events.length)
  return { ops, events }
}

/** Commits on the calling thread: right for `normal` durability, where a commit is a few writes
 *  to the page cache. With `full`, each commit blocks the event loop for an fsync: use ThreadWriter. */
export class GroupWriter implements Writer {
  private queue: Pending[] = []
  private staged: WriteSet[] = []
  private scheduled = false

  constructor(
    private readonly repo: Repo,
    private readonly report: WriterEvents = {},
  ) {}

  get pending(): number {
    return this.queue.length
  }

  commit(ws: WriteSet): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ws, resolve, reject })
      if (!this.scheduled) {
        this.scheduled = true
        // setImmediate runs after the I/O callbacks of this turn, so requests that arrived
        // together are already queued when the transaction starts.
        setImmediate(() => this.flush())
      }
    })
  }

  /** On this thread nothing runs beside the caller, so a staged part just waits for its commit. */
  stage(ws: WriteSet): void {
    this.staged.push(ws)
  }

  discardStaged(): void {
    this.staged = []
  }

  /** Events are written in their commit's transaction here: nothing is ever behind. */
  flushEvents(): Promise<void> {
    return Promise.resolve()
  }

  /** On this thread the delete runs at once, between groups. */
  remove(machineId: string): Promise<void> {
    try {
      this.repo.deleteMachine(machineId)
    } catch (err) {
      return Promise.reject(new StorageError(err))
    }
    return Promise.resolve()
  }

  async close(): Promise<void> {
    this.flush()
  }

  /** Commits whatever is queued now; also used at shutdown. */
  flush(): void {
    this.scheduled = false
    const group = this.queue
    if (group.length === 0) return
    this.queue = []
    const staged = this.staged
    this.staged = []
    const started = process.hrtime.bigint()
    try {
      this.repo.db.transaction(() => {
        for (const ws of staged) this.repo.write(ws)
        for (const p of group) this.repo.write(p.ws)
      })()
    } catch (err) {
      const failure = new StorageError(err)
      for (const p of group) p.reject(failure)
      return
    }
    const stats = { seconds: Number(process.hrtime.bigint() - started) / 1e9, writeSets: group.length, ...sizes(staged, group) }
    this.report.onCommit?.(stats)
    this.report.onEventsStored?.(stats.events)
    for (const p of group) p.resolve()
  }
}
