// The writer thread of ThreadWriter: its own connection to the store, one transaction per
// group it is sent, the outcome posted back once the transaction is committed (and, with
// `full` durability, fsynced by SQLite before COMMIT returns).
import { parentPort, workerData } from 'node:worker_threads'
import { openDb, type Durability } from './db.js'
import { Repo, type WriteSet } from './repo.js'
import { unpack, type FromThread, type ToThread } from './thread-writer.js'

const { file, durability } = workerData as { file: string; durability: Durability }
const port = parentPort!
let repo: Repo
try {
  repo = new Repo(openDb(file, { durability }))
} catch (err) {
  // The main side treats this as fatal: nothing can be written.
  port.postMessage({ kind: 'fatal', message: `cannot open ${file}: ${(err as Error).message}` } satisfies FromThread)
  process.exit(1)
}
port.postMessage({ kind: 'ready' } satisfies FromThread)
const writeGroup = repo.db.transaction((sets: WriteSet[]) => {
  for (const ws of sets) repo.write(ws)
})

port.on('message', (msg: ToThread) => {
  if (msg.kind === 'close') {
    repo.db.close()
    port.postMessage({ kind: 'closed' } satisfies FromThread)
    port.close()
    return
  }
  const sets = unpack(msg.group)
  const started = process.hrtime.bigint()
  let reply: FromThread
  try {
    writeGroup(sets)
    reply = { kind: 'committed', seconds: Number(process.hrtime.bigint() - started) / 1e9 }
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown }
    reply = { kind: 'failed', code: typeof e.code === 'string' ? e.code : undefined, message: String(e.message ?? err) }
  }
  port.postMessage(reply)
})
