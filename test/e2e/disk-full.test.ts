// A database that runs out of space under concurrent load (PRAGMA max_page_count on the
// server's own connection, as test/api/storage.test.ts does): writes get a clear 503, reads
// keep working, nothing acknowledged is lost, writes resume when space returns, and a restart
// afterwards restores every machine from its op log. In-process, because the test lowers and
// raises max_page_count while the server runs, which only its own connection allows; the
// deployed path (a quota set at start-up, reached on the writer thread) is test/e2e/quota.test.ts.
import t from 'tap'
import { openLab } from '../api/fixtures/lab.js'
import { listeningLab } from '../api/fixtures/stream.js'
import { call } from './fixtures/child.js'
import { checkMachine, Ledger, restWorker, socketWorker, TASKS, type MachineConfig } from './fixtures/load.js'

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

t.test('disk full under load: 503, nothing acknowledged lost, recovery when space returns', async (t) => {
  // Committing on the lab's own connection, the one whose max_page_count this test changes.
  const lab = await listeningLab({ KMAPLAB_DURABILITY: 'normal' })
  let closed = false
  t.teardown(() => (closed ? undefined : lab.close()))
  const configs = new Map<string, MachineConfig>()
  const ledger = new Ledger()
  for (let seed = 0; seed < 2; seed++) {
    const config = { arch: 'x86_32' as const, cpus: 2, seed }
    const { id } = await lab.post('/v1/machines', config)
    configs.set(id, config)
    ledger.ack(id, (await lab.post(`/v1/machines/${id}/ops`, { ops: TASKS })).results)
  }
  const ids = [...configs.keys()]

  let stop = false
  const opts = { ledger, stopped: () => stop, tolerate: (why: string) => why === '503' || why === 'storage_unavailable' }
  const workers = [
    ...ids.flatMap((id) => [0, 1].map((w) => restWorker(lab.base, id, w, opts))),
    socketWorker(lab.base, ids[0]!, opts),
  ]
  await pause(300)
  lab.db.pragma(`max_page_count = ${lab.db.pragma('page_count', { simple: true }) as number}`)
  await pause(800)
  const state = await call(lab.base, 'GET', `/v1/machines/${ids[0]}/state`)
  t.equal(state.status, 200, 'reads are served while the disk is full')
  const refusedWhileFull = [...ledger.refused.values()].reduce((a, b) => a + b, 0)
  const ackedWhileFull = ledger.events
  lab.db.pragma('max_page_count = 1073741823')
  await pause(500)
  stop = true
  await Promise.all(workers)
  t.ok(refusedWhileFull > 0, `refused while full: ${JSON.stringify(Object.fromEntries(ledger.refused))}`)
  t.ok(ledger.events > ackedWhileFull, `writes resumed: ${ledger.events - ackedWhileFull} events acknowledged after space returned`)
  const full = await call(lab.base, 'POST', `/v1/machines/${ids[0]}/ops`, { ops: TASKS.slice(0, 1) })
  t.equal(full.status, 200, 'and a new op is accepted')
  ledger.ack(ids[0]!, full.json.results)

  for (const id of ids) await checkMachine(t, lab.base, lab.db, id, configs.get(id)!, ledger, 'after the full disk')

  closed = true
  await lab.close()
  const again = await openLab({ KMAPLAB_DURABILITY: 'normal' }, lab.file)
  t.teardown(again.close)
  await again.app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(again.app.server.address() as { port: number }).port}`
  for (const id of ids) await checkMachine(t, base, again.db, id, configs.get(id)!, ledger, 'restarted')
})
