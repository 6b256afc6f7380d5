// A database quota (KMAPLAB_DB_MAX_MB) reached on the deployed path: the real server as a
// child process, default durability (full), so every write goes through the writer thread's
// own connection, which is where the quota has to hold. Writes past it get 503 and store
// nothing, a batch refused half-way through its staged parts included; reads go on; after a
// restart with a larger quota every acknowledged op is there, the trace has no gap, the state
// is a fresh replay of the op log, and writes work again.
import t from 'tap'
import Database from 'better-sqlite3'
import { STAGE_OPS } from '../../src/service/machines.js'
import { eventsReserve } from '../../src/store/thread-writer.js'
import { tempDbFile } from '../store/fixtures/store.js'
import { call, startServer, type Child } from './fixtures/child.js'
import { batch, checkMachine, Ledger, restWorker, socketWorker, TASKS, type MachineConfig } from './fixtures/load.js'

const QUOTA_MB = 8
/** batch(BIG) is 3,000 ops: 24 parts of up to STAGE_OPS (the last one commits them), about 2 MiB stored. */
const BIG = 1500

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

t.test(`a quota of ${QUOTA_MB} MiB under load, on the writer thread: 503, nothing acknowledged lost, a restart with more room resumes`, async (t) => {
  t.setTimeout(60_000)
  const file = tempDbFile()
  let server: Child = await startServer({ KMAPLAB_DB: file, KMAPLAB_DB_MAX_MB: String(QUOTA_MB) })
  t.teardown(() => void server.proc.kill('SIGKILL'))
  const configs = new Map<string, MachineConfig>()
  const ledger = new Ledger()
  for (let seed = 0; seed < 3; seed++) {
    const config = { arch: 'x86_32' as const, cpus: 2, seed }
    const m = await call(server.base, 'POST', '/v1/machines', config)
    t.equal(m.status, 201, 'machine created')
    configs.set(m.json.id, config)
    ledger.ack(m.json.id, (await call(server.base, 'POST', `/v1/machines/${m.json.id}/ops`, { ops: TASKS })).json.results)
  }
  const ids = [...configs.keys()]
  const [big, ...small] = ids as [string, ...string[]]
  const db = new Database(file, { readonly: true })
  t.teardown(() => db.close())
  const pragma = (name: string): number => db.pragma(name, { simple: true }) as number
  // The op log stops short of the quota by the room kept for the trace events it has
  // acknowledged and not stored yet.
  const quota = QUOTA_MB * 1024 * 1024
  const logPages = (quota - eventsReserve(quota)) / pragma('page_size')
  /** Pages the op log may still take, once waiting events are stored (a trace read stores them). */
  const room = async (): Promise<number> => {
    const read = await call(server.base, 'GET', `/v1/machines/${big}/events?limit=1`)
    if (read.status !== 200) throw new Error(`a trace read got ${read.status}: ${JSON.stringify(read.json)}`)
    return logPages - pragma('page_count') + pragma('freelist_count')
  }
  const post = async (id: string, pairs: number) => {
    const r = await call(server.base, 'POST', `/v1/machines/${id}/ops`, { ops: batch(pairs) })
    if (r.status === 200) ledger.ack(id, r.json.results)
    return r
  }

  // One batch at a time, to leave room for about half a big batch: the next one then runs out
  // of room half-way through its staged parts, after some of them were written.
  const before = await room()
  t.equal((await post(big, BIG)).status, 200, 'a big batch fits')
  const bigPages = before - (await room())
  /** Batches of `pairs` while there are more than `pages` pages of room: the statuses that were not 200. */
  const fill = async (pairs: number, pages: number): Promise<number[]> => {
    const refusedNow: number[] = []
    while ((await room()) > pages) {
      const { status } = await post(big, pairs)
      if (status !== 200) refusedNow.push(status)
    }
    return refusedNow
  }
  t.same(await fill(BIG, 1.5 * bigPages), [], `big batches fit while there is room for 1.5 of them (${bigPages} pages each)`)
  t.same(await fill(100, bigPages / 2), [], 'smaller ones fit down to room for half a big batch')
  const stagePages = (bigPages * STAGE_OPS) / (2 * BIG)
  const left = await room()
  t.ok(left > 3 * stagePages, `room for about ${Math.floor(left / stagePages)} of the ${Math.ceil((2 * BIG) / STAGE_OPS)} parts of a big batch (${left} pages)`)
  const head = (await call(server.base, 'GET', `/v1/machines/${big}`)).json
  t.match(await post(big, BIG), { status: 503, json: { error: { code: 'storage_unavailable' } } }, 'the batch that reaches the quota mid-stage is refused')
  t.match((await call(server.base, 'GET', `/v1/machines/${big}`)).json, { seq: head.seq, opCount: head.opCount }, 'none of its ops is stored')
  t.equal(await room(), left, 'nor any page it wrote')

  // Concurrent load until the quota refuses it: small batches over REST and a socket, big
  // batches beside them.
  let stop = false
  const opts = { ledger, stopped: () => stop, tolerate: (why: string) => why === '503' || why === 'storage_unavailable' }
  const workers = [
    ...small.flatMap((id) => [0, 1].map((w) => restWorker(server.base, id, w, opts))),
    socketWorker(server.base, small[0]!, opts),
    restWorker(server.base, big, 0, opts, () => BIG),
  ]
  const refusals = (): number => [...ledger.refused.values()].reduce((a, b) => a + b, 0)
  const full = async (): Promise<boolean> => refusals() >= 50 && (await room()) < stagePages
  for (let waited = 0; !(await full()) && waited < 10_000; waited += 50) await pause(50)
  for (const id of ids) {
    t.equal((await call(server.base, 'GET', `/v1/machines/${id}/state`)).status, 200, `${id}: state served while full`)
    t.equal((await call(server.base, 'GET', `/v1/machines/${id}/events?limit=100`)).status, 200, `${id}: events served while full`)
  }
  stop = true
  await Promise.all(workers)
  t.ok(await full(), `at the quota (room ${await room()} pages), refused: ${JSON.stringify(Object.fromEntries(ledger.refused))}`)
  for (const id of ids) {
    // Every reply came back before the stop, so what is stored is exactly what was acknowledged.
    t.equal((await call(server.base, 'GET', `/v1/machines/${id}`)).json.seq, ledger.acked.get(id)!.length, `${id}: a refused request stored nothing`)
  }

  server.proc.kill('SIGTERM')
  t.equal((await server.exited).code, 0, 'SIGTERM at the quota still shuts down cleanly')
  server = await startServer({ KMAPLAB_DB: file, KMAPLAB_DB_MAX_MB: String(4 * QUOTA_MB) })
  for (const id of ids) await checkMachine(t, server.base, db, id, configs.get(id)!, ledger, 'restarted with a larger quota')
  t.equal((await post(big, BIG)).status, 200, 'a big batch is accepted again')
  t.equal((await post(small[0]!, 1)).status, 200, 'and a small one')
  await checkMachine(t, server.base, db, big, configs.get(big)!, ledger, 'written after the restart')
  t.comment(`quota: ${ledger.events} acknowledged events checked, ${refusals()} requests refused at the quota`)
})

t.test('a KMAPLAB_DB_MAX_MB that is not a whole number of MiB stops the server with its name', async (t) => {
  await t.rejects(startServer({ KMAPLAB_DB: tempDbFile(), KMAPLAB_DB_MAX_MB: '0.5' }), /KMAPLAB_DB_MAX_MB=0\.5: expected an integer from 1 to/)
})
