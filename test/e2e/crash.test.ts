// Kill -9 at a random moment under concurrent batches, restart, and prove that every
// acknowledged op survived, the trace has no gap or duplicate, and the state is exactly what
// a fresh replay of the op log gives.
import t from 'tap'
import Database from 'better-sqlite3'
import { createMachine } from '../../src/sim/index.js'
import { tempDbFile } from '../store/fixtures/store.js'
import { call, startServer } from './fixtures/child.js'

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

interface Acked {
  machine: string
  events: { seq: number }[]
}

t.test('SIGKILL under load loses nothing acknowledged', async (t) => {
  const file = tempDbFile()
  // Full durability: an acknowledged commit is fsynced (the e2e test checks the default).
  const first = await startServer({ KMAPLAB_DB: file })
  const ids: string[] = []
  const configs = new Map<string, unknown>()
  for (let i = 0; i < MACHINES; i++) {
    const config = { arch: 'x86_32', cpus: 2, seed: i }
    const m = await call(first.base, 'POST', '/v1/machines', config)
    configs.set(m.json.id, config)
    t.equal(m.status, 201)
    ids.push(m.json.id)
    await call(first.base, 'POST', `/v1/machines/${m.json.id}/ops`, { ops: [{ op: 'spawn', name: 'A', cpu: 0 }, { op: 'spawn', name: 'B', cpu: 1 }] })
  }

  const acked: Acked[] = []
  let stop = false
  const worker = async (machine: string, w: number): Promise<void> => {
    for (let round = 0; !stop; round++) {
      try {
        const r = await call(first.base, 'POST', `/v1/machines/${machine}/ops`, { ops: batch(1 + ((round + w) % 20)) })
        if (r.status !== 200 || r.json.refused) throw new Error(`unexpected reply ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`)
        acked.push({ machine, events: r.json.results.flatMap((x: { events: { seq: number }[] }) => x.events) })
      } catch (err) {
        if (stop) return // the connection died with the server: this batch was never acknowledged
        throw err
      }
    }
  }
  const workers = ids.flatMap((id) => Array.from({ length: WORKERS_PER_MACHINE }, (_, w) => worker(id, w)))
  await new Promise((r) => setTimeout(r, 300 + Math.random() * 1200))
  stop = true
  first.proc.kill('SIGKILL')
  await Promise.all(workers)
  t.equal((await first.exited).signal, 'SIGKILL')
  t.ok(acked.length > 10, `${acked.length} batches were acknowledged before the kill`)

  const second = await startServer({ KMAPLAB_DB: file })
  t.teardown(() => void second.proc.kill('SIGKILL'))
  const db = new Database(file, { readonly: true })
  t.teardown(() => db.close())
  for (const id of ids) {
    const info = await call(second.base, 'GET', `/v1/machines/${id}`)
    t.equal(info.status, 200)
    const stored: { seq: number }[] = []
    for (let after = 0; ; ) {
      const page = await call(second.base, 'GET', `/v1/machines/${id}/events?after=${after}&limit=5000`)
      stored.push(...page.json.events)
      if (page.json.next === null) break
      after = page.json.next
    }
    t.same(stored.map((e) => e.seq), Array.from({ length: info.json.seq }, (_, i) => i + 1), `${id}: seq 1..${info.json.seq}, no gap, no duplicate`)

    const bySeq = new Map(stored.map((e) => [e.seq, JSON.stringify(e)]))
    const mine = acked.filter((a) => a.machine === id).flatMap((a) => a.events)
    t.ok(mine.every((e) => bySeq.get(e.seq) === JSON.stringify(e)), `${id}: all ${mine.length} acknowledged events are stored as acknowledged`)

    const replayed = createMachine(configs.get(id) as Parameters<typeof createMachine>[0])
    const ops = db.prepare('SELECT op FROM ops WHERE machine_id = ? ORDER BY n').pluck().all(id) as string[]
    const events = ops.flatMap((op) => replayed.apply(JSON.parse(op)).events)
    t.equal(events.length, stored.length, `${id}: replaying ${ops.length} ops gives the stored trace length`)
    t.equal(JSON.stringify(events), JSON.stringify(stored), `${id}: and the same events`)
    const state = await call(second.base, 'GET', `/v1/machines/${id}/state`)
    t.equal(JSON.stringify(state.json), JSON.stringify(replayed.state()), `${id}: served state equals a fresh replay`)
  }
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
