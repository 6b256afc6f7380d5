// GET /v1/machines/{id}/trace: each format's structure over HTTP, paging across store pages,
// a fixed end seq, a 400 naming `format`, and another principal's machine not existing.
import t from 'tap'
import { PAGE_SIZE } from '../../src/api/routes/export.js'
import { bearer, openSharedLab, type TestLab } from './fixtures/lab.js'

const P32 = { arch: 'x86_32', cpus: 2, seed: 1, layout: { pkmapBase: '0xff800000', highmemStartPfn: 0x38000 } }

/** A machine with more events than one store page: two tasks mapping, unmapping and switching. */
async function busyMachine(lab: TestLab): Promise<{ id: string; seq: number }> {
  const h = bearer('alice')
  const id = (await lab.app.inject({ method: 'POST', url: '/v1/machines', payload: P32, headers: h })).json().id as string
  const ops: object[] = [{ op: 'spawn', name: 'A', cpu: 0 }, { op: 'spawn', name: 'B', cpu: 0 }]
  // kmap_atomic + kunmap_atomic + a tick per round; A and B alternate on CPU 0.
  for (let i = 0; i < 300; i++) {
    const pid = (i % 2) + 1
    ops.push({ op: 'kmap_atomic', pid, page: 0x40000 + i }, { op: 'kunmap_atomic', pid, addr: '0xfffbb000' }, { op: 'preempt', cpu: 0 })
  }
  const res = await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: { ops }, headers: h })
  t.equal(res.json().refused, null, 'the busy batch runs whole')
  return { id, seq: res.json().seq as number }
}

t.test('each format streams the whole trace with its type and file name', async (t) => {
  const lab = await openSharedLab()
  t.teardown(lab.close)
  const { id, seq } = await busyMachine(lab)
  t.ok(seq > 2 * PAGE_SIZE, `more events (${seq}) than two store pages`)
  const get = (format: string) => lab.app.inject({ url: `/v1/machines/${id}/trace?format=${format}`, headers: bearer('alice') })

  const jsonl = await get('jsonl')
  t.equal(jsonl.statusCode, 200)
  t.equal(jsonl.headers['content-type'], 'application/x-ndjson')
  t.equal(jsonl.headers['content-disposition'], `attachment; filename="${id}.jsonl"`)
  const lines = jsonl.body.split('\n')
  t.equal(lines.pop(), '')
  const events = lines.map((l) => JSON.parse(l) as { seq: number })
  t.same(events.map((e) => e.seq), Array.from({ length: seq }, (_, i) => i + 1), 'every seq once, in order, across pages')
  const stored = (await lab.app.inject({ url: `/v1/machines/${id}/events?limit=10`, headers: bearer('alice') })).json().events
  t.same(events.slice(0, 10), stored, 'the same events as the events route')

  const perfetto = await get('perfetto')
  t.equal(perfetto.headers['content-type'], 'application/json')
  t.equal(perfetto.headers['content-disposition'], `attachment; filename="${id}.perfetto.json"`)
  t.match(perfetto.body, /^\{"traceEvents":\[/, 'traceEvents first')
  const doc = JSON.parse(perfetto.body) as { traceEvents: { ph: string; name: string; tid: number }[] }
  t.ok(doc.traceEvents.some((e) => e.ph === 'M' && e.name === 'process_name'), 'the machine is a named process')
  t.ok(doc.traceEvents.some((e) => e.ph === 'X' && e.tid === 0), 'task slices on CPU 0')

  const ftrace = await get('ftrace')
  t.equal(ftrace.headers['content-type'], 'text/plain; charset=utf-8')
  t.equal(ftrace.headers['content-disposition'], `attachment; filename="${id}.ftrace.txt"`)
  const text = ftrace.body.split('\n')
  t.equal(text[0], '# tracer: nop')
  const body = text.filter((l) => l !== '' && !l.startsWith('#'))
  t.equal(body.length, seq, 'one line per event')
  t.ok(body.every((l) => /: (sched_switch|tracing_mark_write): /.test(l)), 'every line is a sched_switch or a trace mark')
})

t.test('the export ends at the seq committed when it started', async (t) => {
  const lab = await openSharedLab()
  t.teardown(lab.close)
  const { id, seq } = await busyMachine(lab)
  const pending = lab.app.inject({ url: `/v1/machines/${id}/trace?format=jsonl`, headers: bearer('alice') })
  await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: { op: 'spawn', name: 'C', cpu: 1 }, headers: bearer('alice') })
  const last = JSON.parse((await pending).body.trimEnd().split('\n').at(-1)!) as { seq: number }
  t.equal(last.seq, seq)
})

t.test('a wrong or missing format is a 400 naming format', async (t) => {
  const lab = await openSharedLab()
  t.teardown(lab.close)
  const { id } = await busyMachine(lab)
  for (const q of ['?format=pdf', '']) {
    const res = await lab.app.inject({ url: `/v1/machines/${id}/trace${q}`, headers: bearer('alice') })
    t.equal(res.statusCode, 400, q)
    t.equal(res.json().error.field, 'format', q)
  }
})

t.test("another principal's trace does not exist; no token is a 401", async (t) => {
  const lab = await openSharedLab()
  t.teardown(lab.close)
  const { id } = await busyMachine(lab)
  const res = await lab.app.inject({ url: `/v1/machines/${id}/trace?format=jsonl`, headers: bearer('bob') })
  t.equal(res.statusCode, 404)
  t.equal(res.json().error.code, 'not_found')
  t.equal((await lab.app.inject({ url: `/v1/machines/${id}/trace?format=jsonl` })).statusCode, 401)
})
