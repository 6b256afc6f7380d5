// Staged parts of a large write set (Writer.stage): written early, committed only with the
// commit that follows, refused with it. Both writers keep the same promise.
import t, { type Test } from 'tap'
import { expectGroupRejected, fakeMachine, tempRepo } from './fixtures/store.js'
import { ThreadWriter } from '../../src/store/thread-writer.js'
import { GroupWriter, type CommitStats, type Writer } from '../../src/store/writer.js'
import type { Repo, WriteSet } from '../../src/store/repo.js'

/** Machine `id` with 4 ops, in two parts: ops 1-2 (creating it) and ops 3-4. */
function twoParts(id: string): [WriteSet, WriteSet] {
  const first = fakeMachine(id, 'x', 2)
  const whole = fakeMachine(id, 'x', 4)
  const rest: WriteSet = { machineId: id, ops: whole.ops.slice(2), events: whole.events.slice(4), head: whole.head }
  return [first, rest]
}

const writers: Record<string, (file: string, repo: Repo, onCommit: (s: CommitStats) => void) => Promise<Writer>> = {
  GroupWriter: async (_file, repo, onCommit) => new GroupWriter(repo, onCommit),
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
      t.same([...repo.opsUpTo('m_s')].map((o) => o.n), [1, 2, 3, 4])
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
      t.same([...repo.opsUpTo('m_a')].map((o) => o.n), [1])
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
  t.same([...repo.opsUpTo('m_s')].map((o) => o.n), [1, 2, 3, 4])
})
