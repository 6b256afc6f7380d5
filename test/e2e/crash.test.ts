// Kill -9 at random moments under concurrent load (REST batches and ops over a socket),
// restart, and prove each time that every acknowledged op survived, the trace has no gap or
// duplicate, and the state is exactly what a fresh replay of the op log gives. The rounds run
// on one database, so each restart also recovers what every earlier kill left behind.
// KMAPLAB_FAULT_ROUNDS sets how many (3 by default; the full run in the README uses 20).
import t from 'tap'
import Database from 'better-sqlite3'
import WebSocket from 'ws'
import { createMachine } from '../../src/sim/index.js'
import { tempDbFile } from '../store/fixtures/store.js'
import { call, startServer, type Child } from './fixtures/child.js'

const ROUNDS = Number(process.env.KMAPLAB_FAULT_ROUNDS ?? 3)
const MACHINES = 3
const WORKERS_PER_MACHINE = 3
// Task A runs on CPU 0 and B on CPU 1; each one's first local kmap takes slot 0 of its CPU.
const SLOT0 = ['0xfffbb000', '0xfffab000']

function batch(n: number): unknown[] {
  const ops = []
  for (let i = 0; i < n; i++) {
    const cpu = i % 2
    ops.push({ op: 'kmap_local_page', pid: cpu + 1, page: 0x40000 + i }, { op: 'kunmap_local', pid: cpu + 1, addr: SLOT0[cpu] })
  }
  return ops
}

type Event = { seq: number }
/** What the server acknowledged: events it replied with, per machine, over all rounds. */
type Acked = Map<string, Event[]>

function ack(acked: Acked, machine: string, results: { events: Event[] }[]): void {
  acked.get(machine)!.push(...results.flatMap((x) => x.events))
}

/** Batches over REST until `stopped()`; a failure after the kill is an unacknowledged batch. */
async function restWorker(base: string, machine: string, w: number, acked: Acked, stopped: () => boolean): Promise<void> {
  for (let round = 0; !stopped(); round++) {
    try {
      const r = await call(base, 'POST', `/v1/machines/${machine}/ops`, { ops: batch(1 + ((round + w) % 20)) })
      if (r.status !== 200 || r.json.refused) throw new Error(`unexpected reply ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`)
      ack(acked, machine, r.json.results)
    } catch (err) {
      if (stopped()) return // the connection died with the server: this batch was never acknowledged
      throw err
    }
  }
}

/** Batches over the machine's socket, one at a time; the `result` message is the acknowledgement. */
async function socketWorker(base: string, machine: string, acked: Acked, stopped: () => boolean): Promise<void> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/machines/${machine}/stream`)
  ws.on('error', () => {})
  await new Promise((resolve) => ws.once('open', resolve).once('close', resolve))
  for (let id = 0; ws.readyState === ws.OPEN && !stopped(); id++) {
    const reply = await new Promise<any>((resolve) => {
      const onMessage = (data: Buffer): void => {
        const msg = JSON.parse(String(data))
        if (msg.id !== id) return
        ws.off('message', onMessage)
        resolve(msg)
      }
      ws.on('message', onMessage)
      ws.once('close', () => resolve(null))
      ws.send(JSON.stringify({ id, ops: batch(1 + (id % 7)) }))
    })
    if (reply === null) break
    if (reply.type !== 'result' || reply.refused) throw new Error(`unexpected socket reply ${JSON.stringify(reply).slice(0, 200)}`)
    ack(acked, machine, reply.results)
  }
  ws.terminate()
  if (!stopped()) throw new Error('the socket closed before the kill')
}

async function allEvents(base: string, id: string): Promise<Event[]> {
  const stored: Event[] = []
  for (let after = 0; ; ) {
    const page = await call(base, 'GET', `/v1/machines/${id}/events?after=${after}&limit=10000`)
    stored.push(...page.json.events)
    if (page.json.next === null) return stored
    after = page.json.next
  }
}

t.test(`SIGKILL under load, ${ROUNDS} rounds: nothing acknowledged is lost`, async (t) => {
  t.setTimeout(60_000 + ROUNDS * 20_000)
  const file = tempDbFile()
  // Full durability: an acknowledged commit is fsynced (the e2e test checks the default).
  let server: Child = await startServer({ KMAPLAB_DB: file })
  t.teardown(() => void server.proc.kill('SIGKILL'))
  const configs = new Map<string, Parameters<typeof createMachine>[0]>()
  const acked: Acked = new Map()
  for (let i = 0; i < MACHINES; i++) {
    const config = { arch: 'x86_32' as const, cpus: 2, seed: i }
    const m = await call(server.base, 'POST', '/v1/machines', config)
    t.equal(m.status, 201)
    configs.set(m.json.id, config)
    acked.set(m.json.id, [])
    const spawned = await call(server.base, 'POST', `/v1/machines/${m.json.id}/ops`, { ops: [{ op: 'spawn', name: 'A', cpu: 0 }, { op: 'spawn', name: 'B', cpu: 1 }] })
    ack(acked, m.json.id, spawned.json.results)
  }
  const ids = [...configs.keys()]
  const db = new Database(file, { readonly: true })
  t.teardown(() => db.close())

  for (let round = 1; round <= ROUNDS; round++) {
    let stop = false
    const stopped = (): boolean => stop
    const before = [...acked.values()].reduce((n, a) => n + a.length, 0)
    const workers = [
      ...ids.flatMap((id) => Array.from({ length: WORKERS_PER_MACHINE }, (_, w) => restWorker(server.base, id, w, acked, stopped))),
      socketWorker(server.base, ids[round % MACHINES]!, acked, stopped),
    ]
    const killAfter = 200 + Math.random() * 1300
    await new Promise((r) => setTimeout(r, killAfter))
    stop = true
    server.proc.kill('SIGKILL')
    await Promise.all(workers)
    t.equal((await server.exited).signal, 'SIGKILL')
    const now = [...acked.values()].reduce((n, a) => n + a.length, 0)
    t.ok(now > before, `round ${round}: killed after ${killAfter.toFixed(0)} ms, ${now - before} events acknowledged in the round`)

    server = await startServer({ KMAPLAB_DB: file })
    for (const id of ids) {
      const info = await call(server.base, 'GET', `/v1/machines/${id}`)
      t.equal(info.status, 200)
      const stored = await allEvents(server.base, id)
      t.ok(stored.length === info.json.seq && stored.every((e, i) => e.seq === i + 1), `round ${round}, ${id}: seq 1..${info.json.seq}, no gap, no duplicate`)
      const bySeq = new Map(stored.map((e) => [e.seq, JSON.stringify(e)]))
      const mine = acked.get(id)!
      const lost = mine.filter((e) => bySeq.get(e.seq) !== JSON.stringify(e))
      t.equal(lost.length, 0, `round ${round}, ${id}: all ${mine.length} acknowledged events stored as acknowledged`)

      const replayed = createMachine(configs.get(id)!)
      const ops = db.prepare('SELECT op FROM ops WHERE machine_id = ? ORDER BY n').pluck().all(id) as string[]
      const events = ops.flatMap((op) => replayed.apply(JSON.parse(op)).events)
      t.equal(JSON.stringify(events), JSON.stringify(stored), `round ${round}, ${id}: replaying ${ops.length} ops gives the stored events`)
      const state = await call(server.base, 'GET', `/v1/machines/${id}/state`)
      t.equal(JSON.stringify(state.json), JSON.stringify(replayed.state()), `round ${round}, ${id}: served state equals a fresh replay`)
    }
  }
  t.comment(`fault injection: ${ROUNDS} SIGKILL rounds, ${[...acked.values()].reduce((n, a) => n + a.length, 0)} acknowledged events checked`)
})

t.test('SIGTERM drains, commits, closes the database and exits 0', async (t) => {
  const file = tempDbFile()
  const server = await startServer({ KMAPLAB_DB: file, KMAPLAB_DURABILITY: 'normal' })
  const m = await call(server.base, 'POST', '/v1/machines', { arch: 'x86_32', cpus: 2 })
  const inflight = Array.from({ length: 20 }, () => call(server.base, 'POST', `/v1/machines/${m.json.id}/ops`, { op: 'spawn', name: 'T' }).catch(() => null))
  await new Promise((r) => setTimeout(r, 5))
  server.proc.kill('SIGTERM')
  const replies = await Promise.all(inflight)
  const { code } = await server.exited
  t.equal(code, 0)
  t.match(server.output(), /shutting down/)
  t.match(server.output(), /"msg":"stopped"/)
  const ok = replies.filter((r) => r?.status === 200).length
  const db = new Database(file, { readonly: true })
  const opCount = (db.prepare('SELECT op_count FROM machines WHERE id = ?').pluck().get(m.json.id) as number)
  db.close()
  t.ok(opCount >= ok, `every acknowledged op is stored (${ok} acknowledged, ${opCount} stored)`)
})

t.test('refuses to listen beyond loopback without tokens, with an explanation', async (t) => {
  await t.rejects(startServer({ KMAPLAB_DB: tempDbFile(), HOST: '0.0.0.0' }), /refusing to listen on 0\.0\.0\.0 without access control/)
})
