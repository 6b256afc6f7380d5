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
  for (const ws of unpack(msg.group)) repo.write(ws)
}

function abandon(): void {
  if (repo.db.inTransaction) rollback.run()
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
})
