import t from 'tap'
import { statSync } from 'node:fs'
import { expectGroupRejected, fakeMachine, tempRepo } from './fixtures/store.js'
import { pack, ThreadWriter, unpack } from '../../src/store/thread-writer.js'
import { StorageError, type CommitStats } from '../../src/store/writer.js'
import type { WriteSet } from '../../src/store/repo.js'

t.test('a group crosses to the thread and back unchanged', async (t) => {
  const a = fakeMachine('m_a', 'x', 3)
  a.events[0]!.cpu = null
  a.events[1]!.pid = null
  a.checkpoint = { opN: 3, seq: 6, hash: 'ab'.repeat(32) }
  a.idempotency = { owner: 'x', key: 'k-1', requestHash: 'cd'.repeat(32), reply: '{"seq":6}' }
  const b: WriteSet = { machineId: 'm_b', ops: [], events: [], head: { opCount: 0, seq: 0, status: 'halted' } }
  const c = fakeMachine('m_c', 'y', 1)
  delete c.newMachine
  t.same(unpack(pack([a, b, c])), [a, b, c])
})

t.test('write sets of one tick share a transaction on the thread, and are readable once settled', async (t) => {
  const { repo, file } = tempRepo()
  const commits: CommitStats[] = []
  const w = new ThreadWriter({ file, durability: 'full', onCommit: (s) => commits.push(s) })
  t.teardown(() => w.close())
  await w.ready
  await Promise.all([w.commit(fakeMachine('m_a', 'x', 2)), w.commit(fakeMachine('m_b', 'x', 3))])
  t.equal(commits.length, 1)
  t.match(commits[0], { writeSets: 2, ops: 5, events: 10 })
  t.equal(repo.countMachines('x'), 2, 'the main connection sees the commit')
  t.same(repo.queryEvents('m_b', { after: 0, limit: 100 }).map((b) => JSON.parse(b).seq), [1, 2, 3, 4, 5, 6])
  await w.commit(fakeMachine('m_c', 'x', 1))
  t.equal(commits.length, 2, 'a later tick is a new transaction')
})

t.test('what arrives while a transaction is in flight is the next group, committed after it', async (t) => {
  const { repo, file } = tempRepo()
  const commits: CommitStats[] = []
  const w = new ThreadWriter({ file, durability: 'normal', onCommit: (s) => commits.push(s) })
  t.teardown(() => w.close())
  const order: string[] = []
  const first = w.commit(fakeMachine('m_a', 'x', 500)).then(() => order.push('a'))
  await new Promise((r) => setImmediate(r)) // m_a is now in flight
  t.equal(w.pending, 1)
  const rest = [w.commit(fakeMachine('m_b', 'x', 1)).then(() => order.push('b')), w.commit(fakeMachine('m_c', 'x', 1)).then(() => order.push('c'))]
  await Promise.all([first, ...rest])
  t.same(order, ['a', 'b', 'c'])
  t.same(commits.map((c) => c.writeSets), [1, 2])
  t.equal(repo.countMachines('x'), 3)
})

t.test('a failed transaction rejects its whole group and writes none of it', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'full' })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 1))
  // m_a again: its primary key makes the transaction fail.
  const results = await Promise.allSettled([w.commit(fakeMachine('m_b', 'x', 2)), w.commit(fakeMachine('m_a', 'x', 1))])
  expectGroupRejected(t, results, /SQLITE_CONSTRAINT/)
  t.equal(repo.getMachine('m_b'), undefined)
  t.equal(repo.countMachines('x'), 1)
  await w.commit(fakeMachine('m_c', 'x', 1))
  t.equal(repo.countMachines('x'), 2, 'the writer goes on after a failed transaction')
})

t.test('close commits what is queued, then stops the thread', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'full' })
  const p = w.commit(fakeMachine('m_a', 'x', 1))
  t.equal(w.pending, 1)
  await w.close()
  await p
  t.equal(w.pending, 0)
  t.ok(repo.getMachine('m_a'))
})

t.test('a thread that cannot open the store fails its commits and reports it', async (t) => {
  let fatal: Error | undefined
  // A path under a regular file: the directory cannot be made.
  const { file: blocker } = tempRepo()
  const w = new ThreadWriter({ file: `${blocker}/sub/kmaplab.db`, durability: 'full', onFatal: (err) => (fatal = err) })
  await t.rejects(w.ready, /cannot open/, 'ready says so')
  await t.rejects(w.commit(fakeMachine('m_a', 'x', 1)), StorageError)
  t.match(fatal?.message, /cannot open/)
  await t.rejects(w.commit(fakeMachine('m_b', 'x', 1)), StorageError, 'and every later one')
  await w.close()
})

t.test('past the quota (maxBytes on the thread\'s connection) a commit fails with SQLITE_FULL, its group whole', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'full', maxBytes: 1024 * 1024 })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 10))
  // 20,000 ops with their events are several MiB.
  const results = await Promise.allSettled([w.commit(fakeMachine('m_b', 'x', 1)), w.commit(fakeMachine('m_big', 'x', 20_000))])
  expectGroupRejected(t, results, /SQLITE_FULL/)
  t.equal((results[1] as PromiseRejectedResult).reason.cause.code, 'SQLITE_FULL', 'the cause keeps SQLite\'s code')
  t.equal(repo.getMachine('m_b'), undefined)
  t.equal(repo.getMachine('m_big'), undefined)
  t.equal(repo.queryEvents('m_a', { after: 0, limit: 100 }).length, 20, 'what was committed before is still read')
  await w.commit(fakeMachine('m_c', 'x', 10))
  t.ok(repo.getMachine('m_c'), 'a write that fits commits after the rollback')
})

t.test('the thread checkpoints the WAL after posting a large commit, not inside it', async (t) => {
  const { file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  await w.ready
  const before = statSync(file).size
  // 1,500 ops and 3,000 events: past the thread's 4,000-row mark, far below SQLite's own
  // checkpoint threshold (set to 10,000 pages), so only the thread's checkpoint moves them.
  await w.commit(fakeMachine('m_a', 'x', 1500))
  await w.commit(fakeMachine('m_b', 'x', 1)) // runs after the checkpoint, on the same thread
  t.ok(statSync(file).size > before + 200_000, `the database file took the WAL's pages (${before} -> ${statSync(file).size} bytes)`)
})
