// Staged parts of a large write set (Writer.stage): written early, committed only with the
// commit that follows, refused with it. Both writers keep the same promise.
import t, { type Test } from 'tap'
import { expectGroupRejected, fakeMachine, tempRepo } from './fixtures/store.js'
import { ThreadWriter } from '../../src/store/thread-writer.js'
import { GroupWriter, type CommitStats, type Writer } from '../../src/store/writer.js'
import type { Repo, WriteSet } from '../../src/store/repo.js'

/** Machine `id` in parts ending after each of `ends` ops: the first creates it, each later
 *  one carries the next ops with the head as of its last op. */
function parts<Ends extends number[]>(id: string, ...ends: Ends): { [K in keyof Ends]: WriteSet } {
  return ends.map((end, i) => {
    const part = fakeMachine(id, 'x', end)
    if (i === 0) return part
    const from = ends[i - 1]!
    return { machineId: id, ops: part.ops.slice(from), events: part.events.slice(2 * from), head: part.head }
  }) as { [K in keyof Ends]: WriteSet }
}

/** Machine `id` with 4 ops, in two parts: ops 1-2 (creating it) and ops 3-4. */
const twoParts = (id: string): [WriteSet, WriteSet] => parts(id, 2, 4)

const writers: Record<string, (file: string, repo: Repo, onCommit: (s: CommitStats) => void) => Promise<Writer>> = {
  GroupWriter: async (_file, repo, onCommit) => new GroupWriter(repo, { onCommit }),
  ThreadWriter: async (file, _repo, onCommit) => {
    const w = new ThreadWriter({ file, durability: 'full', onCommit })
    await w.ready
    return w
  },
}

for (const [name, make] of Object.entries(writers)) {
  t.test(name, async (t) => {
    const setup = async (t: Test) => {
      const { repo, file } = tempRepo()
      const commits: CommitStats[] = []
      const w = await make(file, repo, (s) => commits.push(s))
      t.teardown(() => w.close())
      return { repo, w, commits }
    }

    t.test('staged parts commit with the commit that follows, in one transaction', async (t) => {
      const { repo, w, commits } = await setup(t)
      const [first, rest] = twoParts('m_s')
      w.stage(first)
      const done = w.commit(rest)
      await new Promise((r) => setTimeout(r, 20))
      await done
      t.same([...repo.opsBetween('m_s', 0)].map((o) => o.n), [1, 2, 3, 4])
      await w.flushEvents()
      t.same(repo.queryEvents('m_s', { after: 0, limit: 100 }).map((b) => JSON.parse(b).seq), [1, 2, 3, 4, 5, 6, 7, 8])
      t.equal(repo.getMachine('m_s')?.seq, 8, 'the head is the last part\'s')
      t.equal(commits.length, 1)
      t.match(commits[0], { writeSets: 1, ops: 4, events: 8 })
    })

    t.test('nothing staged is visible before its commit', async (t) => {
      const { repo, w } = await setup(t)
      const [first, rest] = twoParts('m_s')
      w.stage(first)
      await new Promise((r) => setTimeout(r, 50))
      t.equal(repo.getMachine('m_s'), undefined)
      await w.commit(rest)
      t.ok(repo.getMachine('m_s'))
    })

    t.test('a staged part that fails takes its whole group down, and the writer goes on', async (t) => {
      const { repo, w } = await setup(t)
      await w.commit(fakeMachine('m_a', 'x', 1))
      const [first, rest] = twoParts('m_a') // m_a exists: the staged insert fails
      w.stage(first)
      const results = await Promise.allSettled([w.commit(fakeMachine('m_b', 'x', 1)), w.commit(rest)])
      expectGroupRejected(t, results, /SQLITE_CONSTRAINT/)
      t.equal(repo.getMachine('m_b'), undefined, 'nothing of the group was written')
      t.same([...repo.opsBetween('m_a', 0)].map((o) => o.n), [1])
      await w.commit(fakeMachine('m_c', 'x', 1))
      t.ok(repo.getMachine('m_c'), 'the next group commits')
    })

    t.test('discarded parts leave nothing behind', async (t) => {
      const { repo, w } = await setup(t)
      const [first] = twoParts('m_s')
      w.stage(first)
      w.discardStaged()
      await w.commit(fakeMachine('m_b', 'x', 1))
      t.equal(repo.getMachine('m_s'), undefined)
      t.ok(repo.getMachine('m_b'))
    })
  })
}

t.test('ThreadWriter: parts staged while a group is in flight belong to the next group, not that one', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'normal' })
  t.teardown(() => w.close())
  await w.commit(fakeMachine('m_a', 'x', 1))
  // In flight: a group that fails (m_a exists) and is rolled back. A staged part caught in
  // its transaction would be rolled back with it, and the commit of the rest would fail.
  const first = w.commit(fakeMachine('m_a', 'x', 500))
  await new Promise((r) => setImmediate(r))
  const [part, rest] = twoParts('m_s')
  w.stage(part)
  const second = w.commit(rest)
  const [a, b] = await Promise.allSettled([first, second])
  t.equal(a.status, 'rejected')
  t.equal(b.status, 'fulfilled')
  t.same([...repo.opsBetween('m_s', 0)].map((o) => o.n), [1, 2, 3, 4])
})

t.test('ThreadWriter: a staged part that runs past the quota takes its whole group down, and the writer goes on', async (t) => {
  const { repo, file } = tempRepo()
  const w = new ThreadWriter({ file, durability: 'full', maxBytes: 1024 * 1024 })
  t.teardown(() => w.close())
  // The first part (100 ops) fits in 1 MiB; the second (19,900 ops, several MiB) cannot.
  const [fits, overflows, last] = parts('m_s', 100, 20_000, 20_002)
  w.stage(fits)
  w.stage(overflows)
  const results = await Promise.allSettled([w.commit(fakeMachine('m_b', 'x', 1)), w.commit(last)])
  expectGroupRejected(t, results, /SQLITE_FULL/)
  t.equal(repo.getMachine('m_s'), undefined, 'not even the part that fitted is stored')
  t.equal(repo.getMachine('m_b'), undefined, 'nor the other write set of the group')
  const [small, rest] = parts('m_s', 100, 102)
  w.stage(small)
  await w.commit(rest)
  t.equal([...repo.opsBetween('m_s', 0)].length, 102, 'the same machine, smaller, commits after the rollback')
})
