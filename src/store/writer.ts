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
  events: number
}

/** What the service needs of a writer: group commit with a promise per write set. */
export interface Writer {
  /** Settles once `ws` is committed (durably, at the store's durability), or rejects with StorageError. */
  commit(ws: WriteSet): Promise<void>
  /** Write sets handed in and not yet settled. */
  readonly pending: number
  /** Commits whatever is queued, then stops (shutdown). */
  close(): Promise<void>
}

interface Pending {
  ws: WriteSet
  resolve: () => void
  reject: (err: unknown) => void
}

/** Commits on the calling thread: right for `normal` durability, where a commit is a few writes
 *  to the page cache. With `full`, each commit blocks the event loop for an fsync: use ThreadWriter. */
export class GroupWriter implements Writer {
  private queue: Pending[] = []
  private scheduled = false

  constructor(
    private readonly repo: Repo,
    private readonly onCommit: (stats: CommitStats) => void = () => {},
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

  async close(): Promise<void> {
    this.flush()
  }

  /** Commits whatever is queued now; also used at shutdown. */
  flush(): void {
    this.scheduled = false
    const group = this.queue
    if (group.length === 0) return
    this.queue = []
    const started = process.hrtime.bigint()
    try {
      this.repo.db.transaction(() => {
        for (const p of group) this.repo.write(p.ws)
      })()
    } catch (err) {
      const failure = new StorageError(err)
      for (const p of group) p.reject(failure)
      return
    }
    this.onCommit({
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      writeSets: group.length,
      ops: group.reduce((n, p) => n + p.ws.ops.length, 0),
      events: group.reduce((n, p) => n + p.ws.events.length, 0),
    })
    for (const p of group) p.resolve()
  }
}
