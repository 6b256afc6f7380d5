import t from 'tap'
import { fakeMachine, tempRepo } from './fixtures/store.js'

t.test('machines are listed per owner in id order, paged', async (t) => {
  const { repo, db } = tempRepo()
  db.transaction(() => {
    for (const id of ['m_c', 'm_a', 'm_b']) repo.write(fakeMachine(id, 'alice', 0))
    repo.write(fakeMachine('m_z', 'bob', 0))
  })()
  t.same(repo.listMachines('alice', '', 2).map((m) => m.id), ['m_a', 'm_b'])
  t.same(repo.listMachines('alice', 'm_b', 2).map((m) => m.id), ['m_c'])
  t.equal(repo.countMachines('alice'), 3)
  t.equal(repo.countMachines('bob'), 1)
  t.same(repo.getMachine('m_a')?.config, { arch: 'x86_32', cpus: 2 })
  t.equal(repo.getMachine('nope'), undefined)
})

t.test('events page by seq and filter by type, cpu and pid', async (t) => {
  const { repo, db } = tempRepo()
  db.transaction(() => repo.write(fakeMachine('m_a', 'alice', 50)))()
  const seqs = (rows: string[]): number[] => rows.map((r) => (JSON.parse(r) as { seq: number }).seq)
  t.same(seqs(repo.queryEvents('m_a', { after: 0, limit: 3 })), [1, 2, 3])
  t.same(seqs(repo.queryEvents('m_a', { after: 98, limit: 10 })), [99, 100])
  t.same(seqs(repo.queryEvents('m_a', { after: 0, limit: 3, types: ['counter'] })), [2, 4, 6])
  t.same(seqs(repo.queryEvents('m_a', { after: 0, limit: 4, pids: [3, 5] })), [5, 6, 9, 10])
  t.same(seqs(repo.queryEvents('m_a', { after: 0, limit: 2, cpus: [0], types: ['kmap'] })), [3, 7])
  t.same(repo.queryEvents('m_b', { after: 0, limit: 10 }), [])
})

t.test('paging and the type and pid filters use an index, not a scan of the trace', async (t) => {
  const { db } = tempRepo()
  const plan = (sql: string, args: unknown[] = [1, 0, 'kmap', 10]): string =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join('; ')
  t.match(plan('SELECT body FROM events WHERE mkey = ? AND seq > ? AND type IN (?) ORDER BY seq LIMIT ?'), /USING INDEX events_by_type/)
  t.notMatch(plan('SELECT body FROM events WHERE mkey = ? AND seq > ? AND type IN (?) ORDER BY seq LIMIT ?'), /SCAN events\b(?! USING)/)
  t.match(plan('SELECT body FROM events WHERE mkey = ? AND seq > ? AND pid IN (?) ORDER BY seq LIMIT ?'), /USING INDEX events_by_pid/)
  t.match(plan('SELECT body FROM events WHERE mkey = ? AND seq > ? ORDER BY seq LIMIT ?', [1, 0, 10]), /USING INDEX events_by_seq/)
})

t.test('ops are read back in order up to a seq', async (t) => {
  const { repo, db } = tempRepo()
  db.transaction(() => repo.write(fakeMachine('m_a', 'alice', 5)))()
  t.same([...repo.opsBetween('m_a', 0, 5)].map((o) => o.n), [1, 2])
  t.same([...repo.opsBetween('m_a', 0)].map((o) => o.n), [1, 2, 3, 4, 5])
})

t.test('delete removes the machine and everything derived from it', async (t) => {
  const { repo, db } = tempRepo()
  db.transaction(() => {
    repo.write({ ...fakeMachine('m_a', 'alice', 3), checkpoint: { opN: 3, seq: 6, hash: 'h' }, idempotency: { owner: 'alice', key: 'k', requestHash: 'r', reply: '{}' } })
    repo.write(fakeMachine('m_b', 'alice', 3))
  })()
  repo.deleteMachine('m_a')
  t.equal(repo.getMachine('m_a'), undefined)
  t.same(repo.queryEvents('m_a', { after: 0, limit: 10 }), [])
  t.same(repo.checkpoints('m_a'), [])
  t.equal(repo.getIdempotency('alice', 'k'), undefined)
  t.equal(repo.queryEvents('m_b', { after: 0, limit: 10 }).length, 6, 'other machines untouched')
})
