// The batch reply is assembled from the events' stored JSON texts; it must be exactly the
// JSON of the reply object, refusal and all.
import t from 'tap'
import { batchBody, batchJson, singleBody, singleJson } from '../../src/api/routes/ops.js'
import type { OpsOutcome } from '../../src/service/machines.js'
import { applyOp, isRefusal, newMachine, type Applied, type Refusal } from '../../src/service/model.js'
import { config, openService } from '../service/fixtures/service.js'

function run(ops: unknown[]): OpsOutcome {
  const m = newMachine({ arch: 'x86_32', cpus: 2 })
  const results: Applied[] = []
  let refused: Refusal | null = null
  let seq = 0
  for (const [i, op] of ops.entries()) {
    const out = applyOp(m, op, i)
    if (isRefusal(out)) {
      refused = out
      break
    }
    results.push(out)
    seq = out.events.at(-1)?.seq ?? seq
  }
  return { seq, results, refused, skipped: ops.length - results.length - (refused ? 1 : 0) }
}

const ops = [
  { op: 'spawn', name: 'A', cpu: 0 },
  { op: 'kmap_local_page', pid: 1, page: 0x40000 },
  { op: 'kunmap_local', pid: 1, addr: '0xfffbb000' },
]

t.test('a batch that ran whole', async (t) => {
  const outcome = run(ops)
  t.equal(outcome.results.length, 3)
  t.equal(batchJson(outcome), JSON.stringify(batchBody(outcome)))
})

t.test('a batch stopped by a refusal names the op in the field', async (t) => {
  const outcome = run([...ops, { op: 'kmap_local_page', pid: 1, page: -1 }, { op: 'schedule', pid: 1 }])
  t.equal(outcome.refused?.index, 3)
  const text = batchJson(outcome)
  t.equal(text, JSON.stringify(batchBody(outcome)))
  t.match(JSON.parse(text).refused, { index: 3, field: 'ops[3].page' })
  t.equal(JSON.parse(text).skipped, 1)
})

t.test('a replayed outcome does not leak its marker', async (t) => {
  const outcome = { ...run(ops), replayed: true }
  t.notOk('replayed' in JSON.parse(batchJson(outcome)))
})

t.test('a single op\'s reply, and its refusal thrown as the request\'s error', async (t) => {
  const outcome = run(ops.slice(0, 2))
  const one = { ...outcome, results: outcome.results.slice(1) }
  t.equal(singleJson(one), JSON.stringify(singleBody(one)))
  t.match(JSON.parse(singleJson(one)), { result: { addr: '0xfffbb000' } })
  const refused = run([{ op: 'kunmap_local', pid: 7, addr: '0xfffbb000' }])
  t.throws(() => singleJson(refused), { statusCode: 409, code: 'no_such_task' })
})

t.test('a reply rendered during the commit, from the texts made for the store, is the JSON of the reply object', async (t) => {
  const { service } = openService()
  const m = await service.create('alice', config)
  // Past the first staged part (32 ops), so the texts run across write sets.
  const mapUnmap = Array.from({ length: 99 }, (_, i) => (i % 2 === 0 ? { op: 'kmap_local_page', pid: 1, page: 0x40000 + i } : { op: 'kunmap_local', pid: 1, addr: '0xfffbb000' }))
  const batch = await service.apply('alice', m.id, [{ op: 'spawn', name: 'A', cpu: 0 }, ...mapUnmap], undefined, batchJson)
  t.equal(batch.results.length, 100)
  t.equal(batch.rendered, JSON.stringify(batchBody(batch)))
  // A watched machine's texts come from the cache that streams read.
  const unsubscribe = service.subscribe('alice', m.id, () => {})
  const one = await service.apply('alice', m.id, [{ op: 'kmap_local_page', pid: 1, page: 0x40000 }], undefined, singleJson)
  unsubscribe()
  t.equal(one.rendered, JSON.stringify(singleBody(one)))
})
