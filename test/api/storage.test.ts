// A full disk (SQLITE_FULL via max_page_count) is a 503 for the write, nothing half-written,
// and reads keep working.
import t from 'tap'
import { config, openLab } from './fixtures/lab.js'

t.test('SQLITE_FULL: 503 for writes, reads still served, the machine intact', async (t) => {
  // Committing on the lab's own connection, the one whose max_page_count this test lowers.
  const lab = await openLab({ KMAPLAB_DURABILITY: 'normal' })
  t.teardown(lab.close)
  const id = (await lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config })).json().id as string
  await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: { op: 'spawn', name: 'A' } })
  const before = (await lab.app.inject({ url: `/v1/machines/${id}/state` })).body

  lab.db.pragma(`max_page_count = ${lab.db.pragma('page_count', { simple: true }) as number}`)
  const batch = { ops: Array.from({ length: 300 }, (_, i) => ({ op: 'kmap', pid: 1, page: 0x40000 + i })) }
  const full = await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: batch })
  t.equal(full.statusCode, 503)
  t.same(Object.keys(full.json().error).sort(), ['code', 'message'])
  t.equal(full.json().error.code, 'storage_unavailable')
  t.notMatch(full.body, /SQLITE|at \w+ \(/, 'no internals in the reply')
  // A small write may still fit in the pages the file has free; it must never be a 500.
  t.match(String((await lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config })).statusCode), /^(201|503)$/)

  t.equal((await lab.app.inject({ url: `/v1/machines/${id}/state` })).body, before, 'reads work and show the committed state')
  t.equal((await lab.app.inject({ url: `/v1/machines/${id}/events` })).statusCode, 200)
  t.equal((await lab.app.inject({ url: '/healthz' })).statusCode, 200)

  lab.db.pragma('max_page_count = 1073741823')
  const after = await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: batch })
  t.equal(after.statusCode, 200, 'writes work again once there is room')
  t.equal(after.json().results.length, 300)
})
