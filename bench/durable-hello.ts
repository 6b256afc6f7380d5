// A bench baseline: the least a durable single-op server does on this machine. fastify with
// the lab's logging; each request's body is appended as one row; the requests of one turn of
// the event loop share a transaction on a worker thread, in WAL mode with synchronous = FULL
// (an fsync per commit, the lab's default durability); a reply waits for its commit. No model,
// no op log per machine, no events, no indexes: the lab's single-op figure against this one is
// what its storage costs beyond durability itself.
import { Worker } from 'node:worker_threads'
import fastify from 'fastify'
import pino from 'pino'

// Plain CommonJS, so that the thread needs no TypeScript loader.
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require('better-sqlite3')
const db = new Database(workerData.file)
db.pragma('journal_mode = WAL')
db.pragma('synchronous = FULL')
db.exec('CREATE TABLE requests (id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
const insert = db.prepare('INSERT INTO requests (body) VALUES (?)')
const commit = db.transaction((bodies) => { for (const b of bodies) insert.run(b) })
parentPort.on('message', (bodies) => { commit(bodies); parentPort.postMessage(bodies.length) })
`
const file = process.env.KMAPLAB_DB
if (!file) throw new Error('KMAPLAB_DB: the file to write')
const thread = new Worker(THREAD, { eval: true, workerData: { file } })

let queue: { body: string; settle: () => void }[] = []
let inFlight: typeof queue | null = null
// One transaction in flight, as in the lab's ThreadWriter; what arrives meanwhile is the next group.
function send(): void {
  if (inFlight || queue.length === 0) return
  inFlight = queue
  queue = []
  thread.postMessage(inFlight.map((p) => p.body))
}
thread.on('message', () => {
  for (const p of inFlight!) p.settle()
  inFlight = null
  send()
})
function committed(body: string): Promise<void> {
  return new Promise((settle) => {
    if (queue.push({ body, settle }) === 1 && !inFlight) setImmediate(send)
  })
}

const app = fastify({ loggerInstance: pino({ level: 'info' }) })
app.post('/ops', async (req) => {
  await committed(JSON.stringify(req.body))
  return { ok: true }
})
process.once('SIGTERM', () => void app.close().then(() => thread.terminate()).then(() => process.exit(0)))
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
