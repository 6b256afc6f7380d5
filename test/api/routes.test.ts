// The API's behaviour through app.inject: every operation of openapi.yaml once, the happy path
// and the refusals the contract names.
import t from 'tap'
import { config, openLab, type TestLab } from './fixtures/lab.js'

async function json(lab: TestLab, method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await lab.app.inject({ method: method as 'GET', url, ...(payload === undefined ? {} : { payload: payload as object }), headers })
  return { status: res.statusCode, headers: res.headers, body: res.body ? JSON.parse(res.body) : undefined }
}

t.test('machines: create, get, list in pages, delete', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  const made = await json(lab, 'POST', '/v1/machines', config)
  t.equal(made.status, 201)
  t.match(made.body, { id: /^m_/, seq: 0, opCount: 0, status: 'running', parent: null, config: { arch: 'x86_32', cpus: 2, KM_MAX_IDX: 16 } })
  const id = made.body.id as string
  t.same((await json(lab, 'GET', `/v1/machines/${id}`)).body, made.body)
  for (let i = 0; i < 2; i++) await json(lab, 'POST', '/v1/machines', config)
  const page1 = await json(lab, 'GET', '/v1/machines?limit=2')
  t.equal(page1.body.machines.length, 2)
  const page2 = await json(lab, 'GET', `/v1/machines?limit=2&after=${page1.body.next}`)
  t.equal(page2.body.machines.length, 1)
  t.equal(page2.body.next, null)
  t.equal((await json(lab, 'DELETE', `/v1/machines/${id}`)).status, 204)
  t.match(await json(lab, 'GET', `/v1/machines/${id}`), { status: 404, body: { error: { code: 'not_found' } } })
  t.match(await json(lab, 'DELETE', `/v1/machines/${id}`), { status: 404 })
})

t.test('an invalid config is a 400 naming the field', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  t.match(await json(lab, 'POST', '/v1/machines', { arch: 'x86_64', cpus: 2, config: { X86_PAE: true } }), {
    status: 400,
    body: { error: { code: 'invalid_config', field: 'config.X86_PAE' } },
  })
  t.match(await json(lab, 'POST', '/v1/machines', { arch: 'x86_32', cpus: 65 }), { status: 400, body: { error: { code: 'invalid_body', field: 'cpus' } } })
  t.match(await json(lab, 'POST', '/v1/machines', { arch: 'x86_32', cpus: '2' }), { status: 400, body: { error: { field: 'cpus' } } }, 'no type coercion in bodies')
  t.match(await json(lab, 'POST', '/v1/machines', { arch: 'x86_32', cpus: 2, colour: 'red' }), { status: 400, body: { error: { field: 'colour', message: /not a known field/ } } })
})

t.test('tasks, ops, batches, state and events', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  const id = (await json(lab, 'POST', '/v1/machines', config)).body.id as string
  const spawned = await json(lab, 'POST', `/v1/machines/${id}/tasks`, { name: 'A', cpu: 0 })
  t.match(spawned, { status: 201, body: { seq: 2, result: { pid: 1 }, events: [{ seq: 1, type: 'task_spawn' }, { seq: 2 }] } })
  const one = await json(lab, 'POST', `/v1/machines/${id}/ops`, { op: 'kmap_local_page', pid: 1, page: '0x40000' })
  t.match(one, { status: 200, body: { result: { addr: '0xfffbb000', slot: 0, fixIdx: 68 }, events: [{ type: 'kmap' }] } })
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { op: 'kmap_local_page', pid: 7, page: 1 }), { status: 409, body: { error: { code: 'no_such_task' } } })
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { op: 'kmap_local_page', page: 1 }), { status: 400, body: { error: { code: 'invalid_op', field: 'pid' } } })
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { op: 'kmap_local_page', pid: 1, page: 'lots' }), { status: 400, body: { error: { code: 'invalid_body', field: 'page' } } })
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { op: 'rowhammer' }), { status: 400, body: { error: { field: 'op', message: /one of kmap_local_page/ } } })

  const batch = await json(lab, 'POST', `/v1/machines/${id}/ops`, {
    ops: [{ op: 'spawn', name: 'B' }, { op: 'kmap_local_page', pid: 9, page: 1 }, { op: 'spawn', name: 'C' }],
  })
  t.match(batch, { status: 200, body: { results: [{ result: { pid: 2 } }], refused: { index: 1, code: 'no_such_task' }, skipped: 1 } })
  const badBatch = await json(lab, 'POST', `/v1/machines/${id}/ops`, { ops: [{ op: 'spawn', name: 'D' }, { op: 'spawn' }] })
  t.match(badBatch, { status: 200, body: { refused: { index: 1, code: 'invalid_op', field: 'ops[1].name' } } })
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { ops: [{ op: 'spawn', name: 3 }] }), { status: 400, body: { error: { field: 'ops[0].name' } } })
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { ops: [] }), { status: 400, body: { error: { field: 'ops' } } })

  const state = await json(lab, 'GET', `/v1/machines/${id}/state`)
  t.match(state.body, { status: 'running', tasks: [{ pid: 1, name: 'A', kmapIdx: 1 }, { pid: 2 }, { pid: 3, name: 'D' }] })
  t.match(await json(lab, 'GET', `/v1/machines/${id}/tasks`), { body: { tasks: [{ pid: 1 }, { pid: 2 }, { pid: 3 }] } })
  t.match(await json(lab, 'GET', `/v1/machines/${id}/tasks/2`), { body: { pid: 2, name: 'B' } })
  t.match(await json(lab, 'GET', `/v1/machines/${id}/tasks/99`), { status: 404 })
  const past = await json(lab, 'GET', `/v1/machines/${id}/state?at=2`)
  t.match(past.body, { seq: 2, tasks: [{ pid: 1, kmapIdx: 0 }] })
  t.equal(past.body.tasks.length, 1)
  t.match(await json(lab, 'GET', `/v1/machines/${id}/state?at=100000`), { status: 400, body: { error: { field: 'at' } } })

  const all = await json(lab, 'GET', `/v1/machines/${id}/events`)
  t.same(all.body.events.map((e: { seq: number }) => e.seq), Array.from({ length: state.body.seq }, (_, i) => i + 1))
  t.equal(all.body.next, null)
  const page = await json(lab, 'GET', `/v1/machines/${id}/events?after=2&limit=2`)
  t.same(page.body.events.map((e: { seq: number }) => e.seq), [3, 4])
  t.equal(page.body.next, 4)
  const kmaps = await json(lab, 'GET', `/v1/machines/${id}/events?type=kmap&type=task_spawn&pid=1`)
  t.same(kmaps.body.events.map((e: { type: string }) => e.type), ['kmap'])
  const spawns = await json(lab, 'GET', `/v1/machines/${id}/events?type=task_spawn&cpu=0&cpu=1`)
  t.equal(spawns.body.events.length, 3, 'A, B and D')

  const branch = await json(lab, 'POST', `/v1/machines/${id}/branches`, { seq: 2 })
  t.match(branch, { status: 201, body: { parent: { id, seq: 2 }, seq: 2, opCount: 1 } })
  t.same((await json(lab, 'GET', `/v1/machines/${branch.body.id}/state`)).body, past.body)
})

t.test('Idempotency-Key: a retried batch is applied once', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  const id = (await json(lab, 'POST', '/v1/machines', config)).body.id as string
  const body = { ops: [{ op: 'spawn', name: 'A' }, { op: 'spawn', name: 'B' }] }
  const key = { 'idempotency-key': 'batch-1' }
  const first = await json(lab, 'POST', `/v1/machines/${id}/ops`, body, key)
  const retry = await json(lab, 'POST', `/v1/machines/${id}/ops`, body, key)
  t.same(retry.body, first.body)
  t.equal(retry.headers['idempotent-replayed'], 'true')
  t.equal(first.headers['idempotent-replayed'], undefined)
  t.equal((await json(lab, 'GET', `/v1/machines/${id}`)).body.opCount, 2)
  t.match(await json(lab, 'POST', `/v1/machines/${id}/ops`, { ops: [{ op: 'spawn', name: 'X' }] }, key), { status: 422, body: { error: { code: 'idempotency_key_reused' } } })
  const spawn1 = await json(lab, 'POST', `/v1/machines/${id}/tasks`, { name: 'C' }, { 'idempotency-key': 's' })
  const spawn2 = await json(lab, 'POST', `/v1/machines/${id}/tasks`, { name: 'C' }, { 'idempotency-key': 's' })
  t.same(spawn2, { ...spawn1, headers: spawn2.headers })
  t.equal(spawn2.status, 201)
})

t.test('operations routes: health, readiness, metrics, spec, docs', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  t.match(await json(lab, 'GET', '/healthz'), { status: 200, body: { status: 'ok' } })
  t.match(await json(lab, 'GET', '/readyz'), { status: 200, body: { status: 'ready' } })
  const id = (await json(lab, 'POST', '/v1/machines', config)).body.id as string
  await json(lab, 'POST', `/v1/machines/${id}/ops`, { op: 'spawn', name: 'A' })
  // Events are stored after their op's commit; a read of the trace waits for them.
  await json(lab, 'GET', `/v1/machines/${id}/events`)
  const metrics = await lab.app.inject({ url: '/metrics' })
  t.match(metrics.headers['content-type'], /^text\/plain; version=0.0.4/)
  for (const line of [
    /^kmaplab_http_requests_total\{method="POST",route="\/v1\/machines",status="201"\} 1$/m,
    /^kmaplab_ops_applied_total 1$/m,
    /^kmaplab_events_stored_total 2$/m,
    /^kmaplab_commit_seconds_count 2$/m,
    /^kmaplab_live_machines 1$/m,
    /^kmaplab_subscribers 0$/m,
  ]) t.match(metrics.body, line)
  const spec = await lab.app.inject({ url: '/openapi.yaml' })
  t.match(spec.body, /^openapi: 3\.1\.0/)
  const docs = await lab.app.inject({ url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.body, /swagger/i)
  t.equal(docs.headers['x-request-id'] !== undefined, true)
})

t.test('request ids: a sane client id is kept, anything else replaced', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  t.equal((await lab.app.inject({ url: '/healthz', headers: { 'x-request-id': 'abc-123' } })).headers['x-request-id'], 'abc-123')
  t.match((await lab.app.inject({ url: '/healthz', headers: { 'x-request-id': 'bad id\n' } })).headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.match(lab.logs.join(''), /"reqId":"abc-123"/)
})
