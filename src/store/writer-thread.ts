// The writer thread of ThreadWriter: its own connection to the store, one transaction per
// group it is sent, the outcome posted back once the transaction is committed (and, with
// `full` durability, fsynced by SQLite before COMMIT returns).
//
// Parts of a large write set may arrive first as `stage` messages: they open the transaction
// and are written at once, and the next `commit` message ends that same transaction. If a
// staged write fails, the transaction is rolled back and the next group is refused whole,
// since the staged part belonged to one of its write sets.
import { parentPort, workerData } from 'node:worker_threads'
import { openDb } from './db.js'
import { Repo } from './repo.js'
import { unpack, type FromThread, type ThreadStore, type ToThread } from './thread-writer.js'

const { file, ...options } = workerData as ThreadStore
const port = parentPort!
let repo: Repo
try {
  repo = new Repo(openDb(file, options))
} catch (err) {
  // The main side treats this as fatal: nothing can be written.
  port.postMessage({ kind: 'fatal', message: `cannot open ${file}: ${(err as Error).message}` } satisfies FromThread)
  process.exit(1)
}
port.postMessage({ kind: 'ready' } satisfies FromThread)
// Checkpoints move committed pages from the WAL into the database file. SQLite's own runs
// inside the COMMIT that crosses its threshold (1,000 pages), so every request of that group
// waits for it: 10-20 % of the time of a stream of 1,000-op batches. Here one runs after the
// group's outcome is posted, while the main thread replies and takes the next requests; the
// automatic one stays as a backstop at a size this one never lets the WAL reach.
const CHECKPOINT_ROWS = 4000
repo.db.pragma('wal_autocheckpoint = 10000')
const checkpoint = repo.db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
/** Rows (ops and events) committed since the last checkpoint. */
let rowsSinceCheckpoint = 0
/** Rows written into the open transaction. */
let rowsInTransaction = 0
const begin = repo.db.prepare('BEGIN')
const commit = repo.db.prepare('COMMIT')
const rollback = repo.db.prepare('ROLLBACK')
/** Why the open transaction was rolled back before its group arrived, if it was. */
let stageFailure: FromThread | null = null

function failure(err: unknown): FromThread {
  const e = err as { code?: unknown; message?: unknown }
  return { kind: 'failed', code: typeof e.code === 'string' ? e.code : undefined, message: String(e.message ?? err) }
}

/** Writes a packed group into the open transaction, opening it first. */
function write(msg: { group: Parameters<typeof unpack>[0] }): void {
  if (!repo.db.inTransaction) begin.run()
  for (const ws of unpack(msg.group)) {
    repo.write(ws)
    rowsInTransaction += ws.ops.length + ws.events.length
  }
}

function abandon(): void {
  rowsInTransaction = 0
  if (repo.db.inTransaction) rollback.run()
}

/** After a commit's outcome is posted: checkpoint once enough has piled up in the WAL. */
function afterCommit(): void {
  rowsSinceCheckpoint += rowsInTransaction
  rowsInTransaction = 0
  if (rowsSinceCheckpoint < CHECKPOINT_ROWS) return
  rowsSinceCheckpoint = 0
  try {
    checkpoint.run()
  } catch {
    // A failed checkpoint loses nothing (the pages stay in the WAL); the next one retries.
  }
}

port.on('message', (msg: ToThread) => {
  if (msg.kind === 'close') {
    abandon()
    repo.db.close()
    port.postMessage({ kind: 'closed' } satisfies FromThread)
    port.close()
    return
  }
  if (msg.kind === 'discard') {
    stageFailure = null
    abandon()
    return
  }
  if (msg.kind === 'stage') {
    if (stageFailure) return
    try {
      write(msg)
    } catch (err) {
      stageFailure = failure(err)
      abandon()
    }
    return
  }
  if (stageFailure) {
    port.postMessage(stageFailure)
    stageFailure = null
    return
  }
  const started = process.hrtime.bigint()
  let reply: FromThread
  try {
    write(msg)
    commit.run()
    reply = { kind: 'committed', seconds: Number(process.hrtime.bigint() - started) / 1e9 }
  } catch (err) {
    reply = failure(err)
    abandon()
  }
  port.postMessage(reply)
  if (reply.kind === 'committed') afterCommit()
})
