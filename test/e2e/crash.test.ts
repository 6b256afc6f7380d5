// Kill -9 at random moments under concurrent load (REST batches and ops over a socket),
// restart, and prove each time that every acknowledged op survived, the trace has no gap or
// duplicate, and the state is exactly what a fresh replay of the op log gives. The rounds run
// on one database, so each restart also recovers what every earlier kill left behind.
// KMAPLAB_FAULT_ROUNDS sets how many (3 by default; the full run in the README uses 20).
import t from 'tap'
import Database from 'better-sqlite3'
import { tempDbFile } from '../store/fixtures/store.js'
import { call, startServer, type Child } from './fixtures/child.js'
import { checkMachine, Ledger, restWorker, socketWorker, TASKS, type MachineConfig } from './fixtures/load.js'

const ROUNDS = Number(process.env.KMAPLAB_FAULT_ROUNDS ?? 3)
const MACHINES = 3
const WORKERS_PER_MACHINE = 3

t.test(`SIGKILL under load, ${ROUNDS} rounds: nothing acknowledged is lost`, async (t) => {
  t.setTimeout(60_000 + ROUNDS * 20_000)
  const file = tempDbFile()
  // Full durability: an acknowledged commit is fsynced (the e2e test checks the default).
  let server: Child = await startServer({ KMAPLAB_DB: file })
  t.teardown(() => void server.proc.kill('SIGKILL'))
  const configs = new Map<string, MachineConfig>()
  const ledger = new Ledger()
  for (let i = 0; i < MACHINES; i++) {
    const config = { arch: 'x86_32' as const, cpus: 2, seed: i }
    const m = await call(server.base, 'POST', '/v1/machines', config)
    t.equal(m.status, 201)
    configs.set(m.json.id, config)
    ledger.ack(m.json.id, (await call(server.base, 'POST', `/v1/machines/${m.json.id}/ops`, { ops: TASKS })).json.results)
  }
  const ids = [...configs.keys()]
  const db = new Database(file, { readonly: true })
  t.teardown(() => db.close())

  let derived = 0
  for (let round = 1; round <= ROUNDS; round++) {
    let stop = false
    const opts = { ledger, stopped: () => stop }
    const before = ledger.events
    const workers = [
      ...ids.flatMap((id) => Array.from({ length: WORKERS_PER_MACHINE }, (_, w) => restWorker(server.base, id, w, opts))),
      socketWorker(server.base, ids[round % MACHINES]!, opts),
    ]
    const killAfter = 200 + Math.random() * 1300
    await new Promise((r) => setTimeout(r, killAfter))
    stop = true
    server.proc.kill('SIGKILL')
    await Promise.all(workers)
    t.equal((await server.exited).signal, 'SIGKILL')
    t.ok(ledger.events > before, `round ${round}: killed after ${killAfter.toFixed(0)} ms, ${ledger.events - before} events acknowledged in the round`)

    server = await startServer({ KMAPLAB_DB: file })
    // Events are stored after their ops' commit: a kill can leave some unstored, which the
    // start-up derives again from the op log before serving (checked by checkMachine).
    derived += Number(/"machines":(\d+),"msg":"trace events lost/.exec(server.output())?.[1] ?? 0)
    for (const id of ids) await checkMachine(t, server.base, db, id, configs.get(id)!, ledger, `round ${round}`)
  }
  t.comment(`fault injection: ${ROUNDS} SIGKILL rounds, ${ledger.events} acknowledged events checked; ${derived} machine traces completed from the op log at start-up`)
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
