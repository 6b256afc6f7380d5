import t from 'tap'
import { statSync } from 'node:fs'
import { expectGroupRejected, fakeMachine, tempRepo } from './fixtures/store.js'
import { eventsReserve, pack, STORE_EVENTS_IDLE_MS, STORE_EVENTS_ROWS, ThreadWriter, unpack } from '../../src/store/thread-writer.js'
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
  const d: WriteSet = { ...fakeMachine('m_d', 'x', 0), copy: { from: 'm_a', throughN: 2, throughSeq: 4 }, head: { opCount: 2, seq: 4, status: 'running' } }
  t.same(unpack(pack([a, b, c, d])), [a, b, c, d])
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
  await w.flushEvents()
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
  await w.flushEvents()
  t.equal(repo.queryEvents('m_a', { after: 0, limit: 100 }).length, 20, 'what was committed before is still read, its events in the room kept for them')
  await w.commit(fakeMachine('m_c', 'x', 10))
  t.ok(repo.getMachine('m_c'), 'a write that fits commits after the rollback')
})

t.test('the thread checkpoints the WAL after posting a large commit, not inside it', async (t) => {
  const { file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  await w.ready
  const before = statSync(file).size
  // 2,100 ops and 4,200 events (enough to be stored with their commit): past the thread's
  // 4,000-row mark, far below SQLite's own checkpoint threshold (set to 10,000 pages), so
  // only the thread's checkpoint moves them.
  await w.commit(fakeMachine('m_a', 'x', 2100))
  await w.commit(fakeMachine('m_b', 'x', 1)) // runs after the checkpoint, on the same thread
  t.ok(statSync(file).size > before + 200_000, `the database file took the WAL's pages (${before} -> ${statSync(file).size} bytes)`)
})

t.test('events follow their commit: a flush waits for them, and without one they are stored once commits pause', async (t) => {
  const { repo, file } = tempRepo()
  const stored: number[] = []
  const w = new ThreadWriter({ file, durability: 'full', onEventsStored: (n) => stored.push(n) })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 3))
  t.same([...repo.opsBetween('m_a', 0)].map((o) => o.n), [1, 2, 3], 'the ops are committed when the commit settles')
  await w.flushEvents()
  t.same(repo.queryEvents('m_a', { after: 0, limit: 100 }).map((b) => JSON.parse(b).seq), [1, 2, 3, 4, 5, 6], 'a flush returns once the events are stored')
  t.same(stored, [6], 'and reports them')
  await w.flushEvents()
  t.same(stored, [6], 'a flush with nothing waiting writes nothing')

  await w.commit(fakeMachine('m_b', 'x', 2))
  for (let waited = 0; repo.storedSeq('m_b') < 4 && waited < 2000; waited += 10) await new Promise((r) => setTimeout(r, 10))
  t.equal(repo.storedSeq('m_b'), 4, `without a flush, stored ${STORE_EVENTS_IDLE_MS} ms after the last commit`)
})

t.test(`once ${STORE_EVENTS_ROWS} events wait, they go into the commit that brings them there`, async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'full' })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 10))
  const ops = STORE_EVENTS_ROWS / 2
  await w.commit(fakeMachine('m_b', 'x', ops))
  t.equal(repo.storedSeq('m_a'), 20, 'the events that waited before it')
  t.equal(repo.storedSeq('m_b'), 2 * ops, 'and its own, with no flush')
})

t.test('a flush asked while a batch is staged is answered after that batch commits', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 2))
  const big = fakeMachine('m_b', 'x', 6)
  w.stage({ ...big, ops: big.ops.slice(0, 3), events: big.events.slice(0, 6), head: { opCount: 3, seq: 6, status: 'running' } })
  const flushed = w.flushEvents().then(() => repo.storedSeq('m_a'))
  const done = w.commit({ machineId: 'm_b', ops: big.ops.slice(3), events: big.events.slice(6), head: big.head })
  t.equal(await flushed, 4, 'the flush covers what was committed before it was asked')
  await done
  await w.flushEvents()
  t.equal(repo.storedSeq('m_b'), 12, 'and a flush after the batch covers the batch')
})

t.test('with a quota, commits stop short of it, leaving room to store the events that wait', async (t) => {
  const { repo, file } = tempRepo()
  const maxBytes = 2 * 1024 * 1024
  const w = new ThreadWriter({ file, durability: 'full', maxBytes })
  t.teardown(() => w.close())
  const pageSize = repo.db.pragma('page_size', { simple: true }) as number
  // Small commits, each below the row mark, until the log is refused.
  let refused: unknown
  let n = 0
  while (!refused && n < 10_000) await w.commit(fakeMachine(`m_${n++}`, 'x', 40)).catch((err: unknown) => (refused = err))
  t.match(refused, { name: 'StorageError', message: /SQLITE_FULL/ }, `the log is refused after ${n - 1} machines`)
  // Stored events may reach into the reserve; a commit of the log may not end inside it.
  const left = maxBytes - (repo.db.pragma('page_count', { simple: true }) as number) * pageSize
  t.ok(left > 0, `refused before the quota: ${left} bytes left of ${maxBytes}, ${eventsReserve(maxBytes)} kept for events`)
  await w.flushEvents()
  t.equal(repo.storedSeq(`m_${n - 2}`), 80, 'the events of the last acknowledged commit are stored in the reserve')
  t.ok((repo.db.pragma('page_count', { simple: true }) as number) * pageSize <= maxBytes, 'and the file is within the quota')
})

t.test('a branch gets its parent\'s history up to the cut: stored events from the table, waiting ones from the thread', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  // Ops 1-3 of the parent with their events stored; ops 4-6 committed in the same group as the
  // branch, so that their events are still waiting on the thread when the branch copies.
  const parent = fakeMachine('m_p', 'x', 6)
  await w.commit({ ...parent, ops: parent.ops.slice(0, 3), events: parent.events.slice(0, 6), head: { opCount: 3, seq: 6, status: 'running' } })
  await w.flushEvents()
  t.equal(repo.storedSeq('m_p'), 6)
  const { newMachine, ...rest } = parent
  const later: WriteSet = { ...rest, ops: parent.ops.slice(3), events: parent.events.slice(6) }
  const branch: WriteSet = {
    ...fakeMachine('m_b', 'x', 0),
    newMachine: { ...newMachine!, id: 'm_b', parentId: 'm_p', parentSeq: 10 },
    copy: { from: 'm_p', throughN: 5, throughSeq: 10 },
    head: { opCount: 5, seq: 10, status: 'running' },
  }
  await Promise.all([w.commit(later), w.commit(branch)])
  t.same([...repo.opsBetween('m_b', 0)], parent.ops.slice(0, 5), 'ops 1-5, as the parent logged them')
  await w.flushEvents()
  t.same(repo.queryEvents('m_b', { after: 0, limit: 100 }), parent.events.slice(0, 10).map((e) => e.body), 'events 1-10: six from the table, four that were waiting')
  t.same(repo.queryEvents('m_p', { after: 0, limit: 100 }).length, 12, 'the parent keeps all of its own')
})

t.test('a removal is served between transactions: after a staged batch commits, with the machine\'s waiting events dropped', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_gone', 'x', 3)) // its six events now wait on the thread
  t.equal(repo.storedSeq('m_gone'), 0)
  const big = fakeMachine('m_b', 'x', 6)
  const order: string[] = []
  // The staged part holds a transaction open on the thread until the batch's commit.
  w.stage({ ...big, ops: big.ops.slice(0, 3), events: big.events.slice(0, 6), head: { opCount: 3, seq: 6, status: 'running' } })
  const removed = w.remove('m_gone').then(() => order.push('removed'))
  const committed = w.commit({ machineId: 'm_b', ops: big.ops.slice(3), events: big.events.slice(6), head: big.head }).then(() => order.push('committed'))
  await Promise.all([removed, committed])
  t.same(order, ['committed', 'removed'], 'the removal waited for the open transaction')
  t.equal(repo.getMachine('m_gone'), undefined)
  await w.flushEvents()
  const orphans = (table: string): number => repo.db.prepare(`SELECT count(*) FROM ${table} WHERE mkey NOT IN (SELECT key FROM machines)`).pluck().get() as number
  t.same([orphans('ops'), orphans('events'), orphans('checkpoints')], [0, 0, 0], 'its waiting events were not stored after it')
  t.equal(repo.storedSeq('m_b'), 12, 'the other machine\'s are')
})

t.test('a removal at the quota succeeds, and frees room for commits', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'full', maxBytes: 1024 * 1024 })
  t.teardown(() => w.close())
  const ids: string[] = []
  // ~100 KB each: the quota is reached well before 50.
  for (let i = 0; i < 50; i++) {
    const id = `m_${i}`
    const outcome = await w.commit(fakeMachine(id, 'x', 400)).then(() => 'ok', (err: StorageError) => err.message)
    if (outcome !== 'ok') {
      t.match(outcome, /SQLITE_FULL/, 'the store fills up')
      break
    }
    ids.push(id)
    await w.flushEvents()
  }
  t.ok(ids.length > 0 && ids.length < 50, `full after ${ids.length} machines`)
  await w.remove(ids[0]!)
  t.equal(repo.getMachine(ids[0]!), undefined)
  await w.commit(fakeMachine('m_after', 'x', 100))
  t.ok(repo.getMachine('m_after'), 'a commit fits again in the room the removal freed')
})

t.test('removals of one machine asked twice are answered in order, each once', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 2))
  const settled = await Promise.allSettled([w.remove('m_a'), w.remove('m_a')])
  t.same(settled.map((s) => s.status), ['fulfilled', 'fulfilled'])
  t.equal(repo.getMachine('m_a'), undefined)
})
