import t from 'tap'
import { ServiceError } from '../../src/service/errors.js'
import { config, openService, someOps } from './fixtures/service.js'
import { newMachine } from '../../src/service/model.js'

const owner = 'alice'

t.test('a machine comes back exactly after a restart, restored only when used', async (t) => {
  const a = openService()
  const m = await a.service.create(owner, config)
  const out = await a.service.apply(owner, m.id, someOps)
  t.equal(out.refused, null, 'the sample ops all apply')
  const before = JSON.stringify(await a.service.state(owner, m.id))
  a.db.close()

  const b = openService(a.file)
  t.equal(b.service.liveCount, 0, 'nothing is restored at start-up')
  t.equal(b.service.get(owner, m.id).seq, out.seq, 'metadata needs no restore')
  t.equal(b.service.liveCount, 0)
  t.equal(JSON.stringify(await b.service.state(owner, m.id)), before)
  t.equal(b.service.liveCount, 1)
  const next = await b.service.apply(owner, m.id, [{ op: 'spawn', name: 'C' }])
  t.equal(next.results[0]!.events[0]!.seq, out.seq + 1, 'seq continues without a gap')
})

t.test('a batch stops at the first refusal; earlier ops stay committed', async (t) => {
  const { service } = openService()
  const m = await service.create(owner, config)
  const out = await service.apply(owner, m.id, [{ op: 'spawn', name: 'A' }, { op: 'kmap_local_page', pid: 9, page: 1 }, { op: 'spawn', name: 'B' }])
  t.equal(out.results.length, 1)
  t.match(out.refused, { index: 1, kind: 'refused', code: 'no_such_task' })
  t.equal(out.skipped, 1)
  t.equal(service.get(owner, m.id).opCount, 1)
  const bad = await service.apply(owner, m.id, [{ op: 'kmap_local_page', page: 1 }])
  t.match(bad.refused, { index: 0, kind: 'invalid', code: 'invalid_op', field: 'pid' })
  t.equal(service.get(owner, m.id).opCount, 1, 'a refused op is not logged')
})

t.test('another principal cannot see, use or delete a machine', async (t) => {
  const { service } = openService()
  const m = await service.create(owner, config)
  for (const attempt of [
    () => service.get('bob', m.id),
    () => service.state('bob', m.id),
    () => service.apply('bob', m.id, [{ op: 'spawn', name: 'X' }]),
    () => service.delete('bob', m.id),
    () => service.branch('bob', m.id, 0),
  ]) {
    await t.rejects(async () => attempt(), { name: 'ServiceError', kind: 'not_found' })
  }
  t.same(service.list('bob', '', 10).machines, [])
})

t.test('state at a past seq and a branch from it agree with the original history', async (t) => {
  const { service } = openService()
  const m = await service.create(owner, config)
  const r = await service.apply(owner, m.id, someOps.slice(0, 3))
  const cut = r.seq
  const then = JSON.stringify(await service.state(owner, m.id))
  await service.apply(owner, m.id, someOps.slice(3))
  t.equal(JSON.stringify(await service.state(owner, m.id, cut)), then)
  // A cut inside an op's events falls back to the op boundary before it.
  t.equal(JSON.stringify(await service.state(owner, m.id, cut + 1)), then)
  const b = await service.branch(owner, m.id, cut)
  t.same(b.parent, { id: m.id, seq: cut })
  t.equal(JSON.stringify(await service.state(owner, b.id)), then)
  t.same(await service.events(owner, b.id, { after: 0, limit: 1000 }), (await service.events(owner, m.id, { after: 0, limit: 1000 })).slice(0, cut), 'the branch has the same trace up to the cut')
  await t.rejects(service.state(owner, m.id, 10 ** 9), { name: 'ServiceError', kind: 'invalid', field: 'at' })
})

t.test('a restore that does not reproduce the stored state is refused loudly, and stays refused', async (t) => {
  const a = openService()
  const m = await a.service.create(owner, config)
  await a.service.apply(owner, m.id, someOps)
  t.ok(a.repo.checkpoints(m.id).length > 0, 'checkpoints were stored')
  a.db.prepare("UPDATE checkpoints SET state_hash = 'x' WHERE mkey = (SELECT key FROM machines WHERE id = ?)").run(m.id)
  a.db.close()
  const b = openService(a.file)
  await t.rejects(b.service.state(owner, m.id), { kind: 'conflict', code: 'machine_diverged' })
  t.match(b.logs.join(''), /MACHINE DIVERGED/)
  t.match(b.service.get(owner, m.id).diverged, /checkpoint hash/)
  await t.rejects(b.service.apply(owner, m.id, [{ op: 'spawn', name: 'Z' }]), { code: 'machine_diverged' })
})

t.test('a tampered op log is caught by the seq check', async (t) => {
  const a = openService()
  const m = await a.service.create(owner, config)
  await a.service.apply(owner, m.id, someOps.slice(0, 3)) // checkpointEvery 2: a snapshot after op 3
  await a.service.apply(owner, m.id, someOps.slice(3, 4))
  // A restore replays only the ops after the latest snapshot, so that is where tampering shows.
  a.db.prepare('UPDATE ops SET op = ? WHERE mkey = (SELECT key FROM machines WHERE id = ?) AND n = 4').run(JSON.stringify({ op: 'migrate_disable', pid: 1 }), m.id)
  a.db.close()
  const b = openService(a.file)
  await t.rejects(b.service.state(owner, m.id), { code: 'machine_diverged' })
})

t.test('an idempotency key makes a retry return the first reply without running again', async (t) => {
  const a = openService()
  const m = await a.service.create(owner, config)
  const idem = { key: 'k1', hash: 'h1' }
  const [first, concurrent] = await Promise.all([
    a.service.apply(owner, m.id, [{ op: 'spawn', name: 'A' }], idem),
    a.service.apply(owner, m.id, [{ op: 'spawn', name: 'A' }], idem),
  ])
  t.same(concurrent.results, first.results)
  t.equal(concurrent.replayed, true)
  a.db.close()
  const b = openService(a.file)
  const later = await b.service.apply(owner, m.id, [{ op: 'spawn', name: 'A' }], idem)
  t.equal(later.replayed, true, 'the reply survives a restart')
  t.same(later.results, first.results)
  t.equal(b.service.get(owner, m.id).opCount, 1, 'applied once')
  await t.rejects(b.service.apply(owner, m.id, [{ op: 'spawn', name: 'B' }], { key: 'k1', hash: 'other' }), { code: 'idempotency_key_reused' })
})

t.test('limits: machines per principal, counting creations in flight', async (t) => {
  const { service } = openService(undefined, { machinesPerOwner: 3 })
  const made = await Promise.allSettled([1, 2, 3, 4, 5].map(() => service.create(owner, config)))
  t.equal(made.filter((r) => r.status === 'fulfilled').length, 3)
  const refused = made.find((r) => r.status === 'rejected') as PromiseRejectedResult
  t.match(refused.reason, { kind: 'limit', code: 'machine_limit' })
  await t.rejects(service.create(owner, { arch: 'x86_64', cpus: 1, config: { HIGHMEM: true } }), { name: 'ServiceError', kind: 'limit' })
  const other = await service.create('bob', { arch: 'x86_32', cpus: 1 })
  t.ok(other.id)
})

t.test('an invalid config is a 400-kind error naming the field', async (t) => {
  const { service } = openService()
  const err = (await service.create(owner, { arch: 'x86_64', cpus: 1, config: { HIGHMEM: true } }).catch((e: unknown) => e)) as ServiceError
  t.type(err, ServiceError)
  t.match(err, { kind: 'invalid', code: 'invalid_config', field: 'config.HIGHMEM' })
})

t.test('a failed commit drops the machine from memory; it comes back as committed', async (t) => {
  const { service, db } = openService()
  const m = await service.create(owner, config)
  await service.apply(owner, m.id, someOps.slice(0, 2))
  const committed = JSON.stringify(await service.state(owner, m.id))
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`)
  const many = Array.from({ length: 400 }, (_, i) => ({ op: 'kmap', pid: 1, page: 0x40000 + i }))
  await t.rejects(service.apply(owner, m.id, many), { kind: 'unavailable', code: 'storage_unavailable' })
  t.equal(JSON.stringify(await service.state(owner, m.id)), committed, 'reads still work and show only committed ops')
  db.pragma('max_page_count = 1073741823')
  const again = await service.apply(owner, m.id, [{ op: 'spawn', name: 'C' }])
  t.equal(again.refused, null)
  t.equal(again.results[0]!.events[0]!.seq, JSON.parse(committed).seq + 1)
})

t.test('least recently used machines leave memory and come back on demand', async (t) => {
  const { service } = openService(undefined, { liveMachines: 2 })
  const ids = []
  for (let i = 0; i < 4; i++) ids.push((await service.create(owner, config)).id)
  t.equal(service.liveCount, 2)
  for (const id of ids) await service.apply(owner, id, [{ op: 'spawn', name: 'A' }])
  t.equal(service.liveCount, 2)
  for (const id of ids) t.equal(((await service.state(owner, id)) as { seq: number }).seq, 2)
})

t.test('delete removes the machine and ends its streams', async (t) => {
  const { service, hub } = openService()
  const m = await service.create(owner, config)
  hub.subscribe(m.id, {}, () => {})
  await service.delete(owner, m.id)
  t.equal(hub.subscribers, 0)
  t.throws(() => service.get(owner, m.id), { name: 'ServiceError', kind: 'not_found' })
})

t.test('committed events are published, after commit, in order', async (t) => {
  const { service, hub, repo } = openService()
  const m = await service.create(owner, config)
  const seen: number[] = []
  hub.subscribe(m.id, {}, (msg) => {
    if (msg.kind !== 'events') return
    for (const e of msg.events) {
      t.ok(repo.queryEvents(m.id, { after: e.seq - 1, limit: 1 }).length === 1, `event ${e.seq} was stored before it was published`)
      seen.push(e.seq)
    }
  })
  const out = await service.apply(owner, m.id, someOps)
  await new Promise((r) => setImmediate(r))
  t.same(seen, Array.from({ length: out.seq }, (_, i) => i + 1))
})

for (const thread of [false, true]) {
  t.test(`a batch larger than a staged part commits whole or not at all (${thread ? 'ThreadWriter' : 'GroupWriter'})`, async (t) => {
    const a = openService(undefined, { checkpointEvery: 1000 }, thread)
    t.teardown(() => a.writer.close())
    const m = await a.service.create(owner, config)
    const ops = [
      { op: 'spawn', name: 'A', cpu: 0 },
      ...Array.from({ length: 1000 }, (_, i) => (i % 2 ? { op: 'kunmap_local', pid: 1, addr: '0xfffbb000' } : { op: 'kmap_local_page', pid: 1, page: 0x40000 + i })),
    ]
    const idem = { key: 'big-1', hash: 'h1' }
    const out = await a.service.apply(owner, m.id, ops, idem)
    t.equal(out.results.length, 1001)
    const again = await a.service.apply(owner, m.id, ops, idem)
    t.equal(again.replayed, true, 'the retry gets the stored reply')
    t.equal(a.service.get(owner, m.id).opCount, 1001, 'and runs nothing')
    t.equal((await a.service.events(owner, m.id, { after: 0, limit: 100000 })).length, out.seq, 'every event is stored')

    // Stopped by a refusal after 300 more ops: those 300 are committed, in order.
    const stopped = await a.service.apply(owner, m.id, [...ops.slice(1, 301), { op: 'kunmap_local', pid: 9, addr: '0xfffbb000' }, ...ops.slice(1, 50)])
    t.match(stopped, { refused: { index: 300, code: 'no_such_task' }, skipped: 49 })
    t.equal(a.service.get(owner, m.id).opCount, 1301)
    const state = JSON.stringify(await a.service.state(owner, m.id))
    await a.writer.close()
    a.db.close()
    const b = openService(a.file)
    t.equal(JSON.stringify(await b.service.state(owner, m.id)), state, 'a restore replays all 1,301 ops to the same state')
  })
}

t.test('a restore starts from the latest snapshot and replays only the ops after it', async (t) => {
  const a = openService(undefined, { checkpointEvery: 3 })
  const m = await a.service.create(owner, config)
  for (const op of someOps) await a.service.apply(owner, m.id, [op]) // snapshots after ops 3 and 6
  t.same(a.db.prepare('SELECT op_n FROM checkpoints WHERE snapshot IS NOT NULL ORDER BY op_n').pluck().all(), [3, 6])
  const before = JSON.stringify(await a.service.state(owner, m.id))
  a.db.close()
  const b = openService(a.file, { checkpointEvery: 3 })
  t.equal(JSON.stringify(await b.service.state(owner, m.id)), before)
  const restored = b.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'machine restored')
  t.match(restored, { ops: 7, replayed: 1 }, 'one op replayed on top of the snapshot after op 6')
  const next = await b.service.apply(owner, m.id, [{ op: 'spawn', name: 'C' }, { op: 'spawn', name: 'D' }])
  t.equal(next.refused, null)
  t.same(b.db.prepare('SELECT op_n FROM checkpoints WHERE snapshot IS NOT NULL ORDER BY op_n').pluck().all(), [3, 6, 9], 'the checkpoint count carries on')
})

t.test('state at every past seq, from snapshots, equals a fresh replay up to that seq', async (t) => {
  const { service } = openService(undefined, { checkpointEvery: 2 })
  const m = await service.create(owner, config)
  const cuts: { seq: number; ops: number }[] = [{ seq: 0, ops: 0 }]
  for (const [i, op] of someOps.entries()) cuts.push({ seq: (await service.apply(owner, m.id, [op])).seq, ops: i + 1 })
  for (let seq = 0; seq <= cuts.at(-1)!.seq; seq++) {
    const ops = cuts.filter((c) => c.seq <= seq).at(-1)!.ops
    const fresh = newMachine(config)
    for (const op of someOps.slice(0, ops)) fresh.apply(op)
    t.equal(JSON.stringify(await service.state(owner, m.id, seq)), JSON.stringify(fresh.state()), `at=${seq}`)
  }
})

t.test('a snapshot that cannot be read is reported like any other mismatch', async (t) => {
  const a = openService()
  const m = await a.service.create(owner, config)
  await a.service.apply(owner, m.id, someOps)
  a.db.prepare("UPDATE checkpoints SET snapshot = '{\"format\": 99}'").run()
  a.db.close()
  const b = openService(a.file)
  await t.rejects(b.service.state(owner, m.id), { code: 'machine_diverged' })
  t.match(b.service.get(owner, m.id).diverged, /snapshot after op 7 cannot be read/)
})

t.test('events an unclean stop left unstored are derived again from the op log at start-up', async (t) => {
  const a = openService()
  const [m1, m2, m3] = [await a.service.create(owner, config), await a.service.create(owner, config), await a.service.create(owner, config)]
  for (const m of [m1, m2, m3]) await a.service.apply(owner, m.id, someOps)
  const trace = async (s: typeof a, id: string): Promise<string[]> => s.service.events(owner, id, { after: 0, limit: 10_000 })
  const before = { m1: await trace(a, m1.id), m2: await trace(a, m2.id) }
  const half = Math.floor(before.m1.length / 2)
  // As the writer thread leaves them after a crash: the events of the last ops missing, after
  // an op boundary, or every event of a machine.
  const boundary = [...a.repo.opsBetween(m1.id, 0, half)].at(-1)!.seqEnd
  a.db.prepare('DELETE FROM events WHERE mkey = (SELECT key FROM machines WHERE id = ?) AND seq > ?').run(m1.id, boundary)
  a.db.prepare('DELETE FROM events WHERE mkey = (SELECT key FROM machines WHERE id = ?)').run(m2.id)
  a.db.close()

  const b = openService(a.file)
  t.same(b.repo.eventLag().map((l) => l.id).sort(), [m1.id, m2.id].sort(), 'the two machines are found behind their logs')
  t.equal(b.service.recoverEvents(), 2, 'and completed')
  t.same(await trace(b, m1.id), before.m1, 'the trace is the one the ops made, event for event')
  t.same(await trace(b, m2.id), before.m2)
  t.same(b.repo.eventLag(), [], 'nothing is behind any more')
  t.equal(b.service.recoverEvents(), 0, 'so a second start-up has nothing to do')
  t.equal(b.service.liveCount, 0, 'and no machine was kept in memory by it')
})

t.test('a machine whose op log no longer replays is marked diverged by the recovery; the others recover', async (t) => {
  const a = openService()
  const [bad, good] = [await a.service.create(owner, config), await a.service.create(owner, config)]
  for (const m of [bad, good]) await a.service.apply(owner, m.id, someOps)
  for (const m of [bad, good]) a.db.prepare('DELETE FROM events WHERE mkey = (SELECT key FROM machines WHERE id = ?) AND seq > 3').run(m.id)
  const last = a.repo.getMachine(bad.id)!.opCount
  a.db.prepare('UPDATE ops SET op = ? WHERE mkey = (SELECT key FROM machines WHERE id = ?) AND n = ?').run(JSON.stringify({ op: 'migrate_disable', pid: 1 }), bad.id, last)
  a.db.close()
  const b = openService(a.file)
  t.equal(b.service.recoverEvents(), 1)
  t.match(b.logs.join(''), /MACHINE DIVERGED/)
  t.match(b.service.get(owner, bad.id).diverged, /op|seq/)
  t.equal(b.repo.storedSeq(good.id), b.service.get(owner, good.id).seq)
})

t.test('on the writer thread: a trace read right after a reply sees the reply\'s events; a delete leaves nothing behind', async (t) => {
  const a = openService(undefined, {}, true)
  t.teardown(() => a.writer.close())
  const [m, other] = [await a.service.create(owner, config), await a.service.create(owner, config)]
  const out = await a.service.apply(owner, m.id, someOps)
  const events = (await a.service.events(owner, m.id, { after: 0, limit: 10_000 })).map((b) => JSON.parse(b).seq)
  t.same(events, Array.from({ length: out.seq }, (_, i) => i + 1), 'every event up to the reply\'s seq')
  await a.service.apply(owner, other.id, someOps)
  // Ops in flight and events waiting when the delete comes.
  const late = a.service.apply(owner, m.id, someOps.slice(2, 4)).then(
    () => 'applied',
    (err: ServiceError) => err.code,
  )
  await a.service.delete(owner, m.id)
  t.match(await late, /^(applied|not_found)$/, 'an op racing the delete lands before it or is refused')
  await a.service.apply(owner, other.id, someOps.slice(2, 4))
  await a.writer.flushEvents()
  const key = (table: string): number => a.db.prepare(`SELECT count(*) FROM ${table} WHERE mkey NOT IN (SELECT key FROM machines)`).pluck().get() as number
  t.same([key('ops'), key('events'), key('checkpoints')], [0, 0, 0], 'no op, event or checkpoint of the deleted machine remains')
  await t.rejects(a.service.apply(owner, m.id, someOps.slice(0, 1)), { code: 'not_found' })
})

/** Forty ops in separate commits: a spawn, then pages mapped and unmapped in turn. */
const longHistory = [{ op: 'spawn', name: 'A', cpu: 0 }, ...Array.from({ length: 39 }, (_, i) => (i % 2 === 0 ? { op: 'kmap_local_page', pid: 1, page: 0x40000 + i } : { op: 'kunmap_local', pid: 1, addr: '0xfffbb000' }))]

for (const thread of [false, true]) {
  t.test(`a branch copies its parent's history up to the cut and replays only from the snapshot before it (${thread ? 'ThreadWriter' : 'GroupWriter'})`, async (t) => {
    const a = openService(undefined, { checkpointEvery: 3 }, thread)
    t.teardown(() => a.writer.close())
    const m = await a.service.create(owner, config)
    const seqs: number[] = []
    for (const op of longHistory) seqs.push((await a.service.apply(owner, m.id, [op])).seq)
    // One past the end of op 20: inside op 21's events, so the branch stops after op 20.
    const cut = seqs[19]! + 1
    const b = await a.service.branch(owner, m.id, cut)
    t.match(b, { opCount: 20, seq: seqs[19], parent: { id: m.id, seq: seqs[19] } })
    t.same([...a.repo.opsBetween(b.id, 0)], [...a.repo.opsBetween(m.id, 0, seqs[19])], 'its op log is the parent\'s first 20 ops')
    const parentTrace = await a.service.events(owner, m.id, { after: 0, limit: 10_000 })
    t.same(await a.service.events(owner, b.id, { after: 0, limit: 10_000 }), parentTrace.slice(0, seqs[19]), 'its trace is the parent\'s up to op 20, event for event')
    t.equal(JSON.stringify(await a.service.state(owner, b.id)), JSON.stringify(await a.service.state(owner, m.id, cut)), 'its state is the parent\'s at the cut')
    const branched = a.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'machine branched')
    t.match(branched, { machine: b.id, ops: 20, replayed: 2 }, 'ops 19 and 20 replayed on the snapshot after op 18')

    // It goes on from the cut, and comes back after a restart from its own checkpoints.
    const next = await a.service.apply(owner, b.id, [{ op: 'kunmap_local', pid: 1, addr: '0xfffbb000' }])
    t.equal(next.refused, null)
    t.equal(next.results[0]!.events[0]!.seq, seqs[19]! + 1, 'seq continues from the cut')
    const after = JSON.stringify(await a.service.state(owner, b.id))
    await a.writer.close()
    a.db.close()
    const c = openService(a.file, { checkpointEvery: 3 })
    t.equal(JSON.stringify(await c.service.state(owner, b.id)), after)
    t.equal(c.service.get(owner, m.id).opCount, longHistory.length, 'the parent is untouched')
  })
}

t.test('a branch at a seq before the first op is the parent\'s config with no history', async (t) => {
  const { service, repo } = openService()
  const m = await service.create(owner, config)
  await service.apply(owner, m.id, someOps)
  const b = await service.branch(owner, m.id, 0)
  t.match(b, { opCount: 0, seq: 0, parent: { id: m.id, seq: 0 } })
  t.same([...repo.opsBetween(b.id, 0)], [])
  t.same(await service.events(owner, b.id, { after: 0, limit: 10 }), [])
})

t.test('a parent marked diverged is not branched: its trace may stop short of its log', async (t) => {
  const a = openService()
  const m = await a.service.create(owner, config)
  const out = await a.service.apply(owner, m.id, someOps)
  a.db.prepare("UPDATE checkpoints SET state_hash = 'x' WHERE mkey = (SELECT key FROM machines WHERE id = ?)").run(m.id)
  a.db.close()
  const b = openService(a.file)
  await t.rejects(b.service.state(owner, m.id), { code: 'machine_diverged' })
  await t.rejects(b.service.branch(owner, m.id, out.seq), { kind: 'conflict', code: 'machine_diverged' })
  // Even at a cut before the bad checkpoint, which a replay up to it would not notice.
  await t.rejects(b.service.branch(owner, m.id, 1), { kind: 'conflict', code: 'machine_diverged' })
  t.same(b.service.list(owner, '', 10).machines.map((x) => x.id), [m.id], 'no branch was created')
})

t.test('a delete of the parent waits for a branch under way; a branch asked during a delete is refused', async (t) => {
  const a = openService(undefined, {}, true)
  t.teardown(() => a.writer.close())
  const m = await a.service.create(owner, config)
  const out = await a.service.apply(owner, m.id, someOps)
  // With nothing left to store, the delete has nothing to wait for but the branch.
  await a.writer.flushEvents()
  const branching = a.service.branch(owner, m.id, out.seq)
  await a.service.delete(owner, m.id)
  const b = await branching
  t.equal(b.opCount, someOps.length, 'the branch committed its whole history before the parent went')
  t.equal(JSON.parse((await a.service.events(owner, b.id, { after: out.seq - 1, limit: 1 }))[0]!).seq, out.seq)

  const m2 = await a.service.create(owner, config)
  await a.service.apply(owner, m2.id, someOps)
  const deleting = a.service.delete(owner, m2.id)
  await t.rejects(a.service.branch(owner, m2.id, 1), { code: 'not_found' })
  await deleting
})

t.test('two deletes of one machine at once both settle, with the one deletion\'s outcome', async (t) => {
  const a = openService(undefined, {}, true)
  t.teardown(() => a.writer.close())
  const m = await a.service.create(owner, config)
  await a.service.apply(owner, m.id, someOps)
  const outcomes = await Promise.allSettled([a.service.delete(owner, m.id), a.service.delete(owner, m.id)])
  t.same(outcomes.map((o) => o.status), ['fulfilled', 'fulfilled'])
  await t.rejects(a.service.delete(owner, m.id), { code: 'not_found' }, 'a later one finds nothing')
})
