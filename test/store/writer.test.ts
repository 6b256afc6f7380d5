import t from 'tap'
import { expectGroupRejected, fakeMachine, tempRepo } from './fixtures/store.js'
import { GroupWriter, type CommitStats } from '../../src/store/writer.js'

t.test('write sets handed in during one tick share one transaction', async (t) => {
  const { repo } = tempRepo()
  const commits: CommitStats[] = []
  const w = new GroupWriter(repo, { onCommit: (s) => commits.push(s) })
  await Promise.all([w.commit(fakeMachine('m_a', 'x', 2)), w.commit(fakeMachine('m_b', 'x', 3))])
  t.equal(commits.length, 1)
  t.match(commits[0], { writeSets: 2, ops: 5, events: 10 })
  await w.commit(fakeMachine('m_c', 'x', 1))
  t.equal(commits.length, 2, 'a later tick is a new transaction')
  t.equal(repo.countMachines('x'), 3)
})

t.test('a failed commit rejects the whole group and writes none of it', async (t) => {
  const { repo, db } = tempRepo()
  const w = new GroupWriter(repo)
  await w.commit(fakeMachine('m_a', 'x', 1))
  // Cap the file at its current size: the next transaction needs pages it cannot get.
  const pages = db.pragma('page_count', { simple: true }) as number
  db.pragma(`max_page_count = ${pages}`)
  const results = await Promise.allSettled([w.commit(fakeMachine('m_b', 'x', 2000)), w.commit(fakeMachine('m_c', 'x', 1))])
  expectGroupRejected(t, results, /SQLITE_FULL/)
  t.equal(repo.getMachine('m_b'), undefined)
  t.equal(repo.getMachine('m_c'), undefined)
  t.equal(repo.countMachines('x'), 1, 'what was committed before is still there')
  db.pragma('max_page_count = 1073741823')
  await w.commit(fakeMachine('m_d', 'x', 1))
  t.equal(repo.countMachines('x'), 2, 'the store works again once space is back')
})

t.test('flush commits what is queued at once (shutdown)', async (t) => {
  const { repo } = tempRepo()
  const w = new GroupWriter(repo)
  const p = w.commit(fakeMachine('m_a', 'x', 1))
  t.equal(w.pending, 1)
  w.flush()
  t.equal(w.pending, 0)
  t.ok(repo.getMachine('m_a'))
  await p
})
