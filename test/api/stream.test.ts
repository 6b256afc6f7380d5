// The WebSocket stream with real `ws` clients: greeting, backlog then live, filters and
// re-subscribing, ops over the socket, access, and the ways a stream ends.
import t from 'tap'
import { TOKENS } from './fixtures/lab.js'
import { listeningLab, machineConfig, mapUnmap, range, StreamClient, type ListeningLab } from './fixtures/stream.js'

async function machineWithTask(lab: ListeningLab, headers: Record<string, string> = {}): Promise<string> {
  const { id } = await lab.post('/v1/machines', machineConfig, headers)
  await lab.post(`/v1/machines/${id}/ops`, { op: 'spawn', name: 'A', cpu: 0 }, headers)
  return id as string
}

t.test('hello, then the stored backlog, then live events, each once and in order', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  const c = await StreamClient.open(lab, id)
  const hello = await c.next()
  t.match(hello, { type: 'hello', version: 1, seq: 2, machine: { id, seq: 2, status: 'running', config: { KM_MAX_IDX: 16 } } })
  c.send({ type: 'subscribe', after: 0 })
  t.match(await c.ofType('subscribed'), { after: 0 })
  t.match(await c.ofType('live'), { seq: 2 })
  const { seq } = await lab.post(`/v1/machines/${id}/ops`, { ops: mapUnmap(4) })
  t.same((await c.eventsUpTo(seq)).map((e) => e.seq), range(1, seq))
  t.same(c.events()[0], { seq: 1, ts: 20, type: 'task_spawn', cpu: 0, pid: null, target: 1, name: 'A', cpus: [0, 1] }, 'events exactly as stored')
  c.close()
})

t.test('without `after`, a subscription starts at the greeting; a message sent at once is not lost', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  // Sent from the open callback, before the greeting has even been read.
  const c = await StreamClient.open(lab, id, { onOpen: (ws) => ws.send(JSON.stringify({ type: 'subscribe' })) })
  t.match(await c.ofType('subscribed'), { after: 2 })
  await c.ofType('live')
  const { seq } = await lab.post(`/v1/machines/${id}/ops`, { op: 'kmap_local_page', pid: 1, page: 0x40000 })
  t.same((await c.eventsUpTo(seq)).map((e) => e.seq), range(3, seq))
  c.close()
})

t.test('filters: types, cpus and pids, stored and live; a new subscribe changes them on the same socket', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  await lab.post(`/v1/machines/${id}/ops`, { ops: [{ op: 'spawn', name: 'B', cpu: 1 }, ...mapUnmap(4)] })
  const c = await StreamClient.open(lab, id)
  c.send({ type: 'subscribe', after: 0, types: ['kmap', 'task_spawn'], cpus: [0] })
  await c.ofType('live')
  t.same(c.events().map((e) => [e.type, e.cpu]), [['task_spawn', 0], ['kmap', 0], ['kmap', 0]])
  const live = await lab.post(`/v1/machines/${id}/ops`, { ops: [{ op: 'kmap_local_page', pid: 2, page: 0x50000 }, ...mapUnmap(2)] })
  // The batch maps on CPU 1 (pid 2), then on CPU 0 (pid 1): once the second is here, the first was passed over.
  await c.until(() => c.events().length > 3)
  t.same(c.events().slice(3).map((e) => [e.type, e.cpu, e.pid]), [['kmap', 0, 1]], 'the kmap on CPU 1 is filtered out')

  // Re-subscribe without `after`: carry on from here with other filters, nothing repeated.
  c.send({ type: 'subscribe', pids: [2] })
  t.match(await c.ofType('subscribed'), { after: live.seq, pids: [2] })
  await c.ofType('live')
  const next = await lab.post(`/v1/machines/${id}/ops`, { ops: [{ op: 'kunmap_local', pid: 2, addr: '0xfffaa000' }, ...mapUnmap(2)] })
  await c.until(() => c.events().some((e) => e.type === 'kunmap' && e.pid === 2))
  const after = c.events().slice(4)
  t.ok(after.length > 0 && after.every((e) => e.pid === 2 && e.seq > live.seq && e.seq <= next.seq), 'only pid 2, only new')

  // Re-subscribe from the start with no filter: the whole trace again, in order.
  c.send({ type: 'subscribe', after: 0 })
  await c.ofType('live')
  const whole = c.messages.slice(c.messages.map((m) => m.type).lastIndexOf('subscribed')).filter((m) => m.type === 'events').flatMap((m) => m.events)
  t.same(whole.map((e: { seq: number }) => e.seq), range(1, next.seq))
  c.send({ type: 'subscribe', after: next.seq + 1 })
  t.match(await c.ofType('error'), { error: { code: 'seq_out_of_range', field: 'after' } })
  c.close()
})

t.test('ops over the socket: replies carry the id and the REST bodies, after commit', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  const c = await StreamClient.open(lab, id)
  c.send({ id: 'one', op: { op: 'kmap_local_page', pid: 1, page: 0x40000 } })
  const one = await c.next((m) => m.id === 'one')
  t.match(one, { type: 'result', id: 'one', seq: 5, result: { addr: '0xfffbb000', slot: 0, fixIdx: 68 }, events: [{ seq: 3, type: 'kmap' }, {}, {}] })
  const stored = await (await fetch(`${lab.base}/v1/machines/${id}/events?after=2`)).json()
  t.equal(stored.events.length, 3, 'committed before the reply')

  c.send({ id: 7, ops: [{ op: 'spawn', name: 'B' }, { op: 'kmap_local_page', pid: 9, page: 1 }, { op: 'spawn', name: 'C' }] })
  t.match(await c.next((m) => m.id === 7), { type: 'result', results: [{ result: { pid: 2 } }], refused: { index: 1, code: 'no_such_task' }, skipped: 1 })
  c.send({ id: 8, op: { op: 'kmap_local_page', pid: 9, page: 1 } })
  t.match(await c.next((m) => m.id === 8), { type: 'error', error: { code: 'no_such_task' } })
  c.send({ id: 9, op: { op: 'kmap_local_page', pid: 1, page: 'lots' } })
  t.match(await c.next((m) => m.id === 9), { type: 'error', error: { code: 'invalid_body', field: 'page' } })
  c.send({ id: 10, ops: [{ op: 'spawn', name: 3 }] })
  t.match(await c.next((m) => m.id === 10), { type: 'error', error: { field: 'ops[0].name' } })
  c.send({ id: 11, ops: [{ op: 'spawn', name: 'D' }, { op: 'spawn' }] })
  t.match(await c.next((m) => m.id === 11), { type: 'result', refused: { index: 1, code: 'invalid_op', field: 'ops[1].name' } })

  // Messages the server does not understand are answered, and the socket stays open.
  c.ws.send('not json')
  t.match(await c.ofType('error'), { error: { code: 'invalid_json' } })
  c.send({ type: 'unsubscribe' })
  t.match(await c.ofType('error'), { error: { code: 'invalid_message', field: 'type' } })
  c.send({ op: { op: 'spawn', name: 'E' } })
  t.match(await c.ofType('error'), { error: { code: 'invalid_message', field: 'id' } })
  c.send({ id: 12, op: { op: 'spawn', name: 'F' } })
  t.match(await c.next((m) => m.id === 12), { type: 'result', result: { pid: 4 } })
  c.close()
})

t.test('access: the REST rules, before the upgrade; a token in the query never reaches the logs', async (t) => {
  const lab = await listeningLab({ KMAPLAB_TOKENS: `alice=${TOKENS.alice},bob=${TOKENS.bob}` })
  t.teardown(lab.close)
  const alice = { authorization: `Bearer ${TOKENS.alice}` }
  const id = await machineWithTask(lab, alice)
  await t.rejects(StreamClient.open(lab, id), /HTTP 401/, 'no token')
  await t.rejects(StreamClient.open(lab, id, { query: '?token=wrong' }), /HTTP 401/, 'a wrong token')
  await t.rejects(StreamClient.open(lab, id, { headers: { authorization: `Bearer ${TOKENS.bob}` } }), /HTTP 404/, "bob cannot see alice's machine")
  await t.rejects(StreamClient.open(lab, 'm_AAAAAAAAAAAA', { headers: alice }), /HTTP 404/)
  await t.rejects(StreamClient.open(lab, 'nope', { headers: alice }), /HTTP 400/)
  const plain = await fetch(`${lab.base}/v1/machines/${id}/stream`, { headers: alice })
  t.equal(plain.status, 426)
  t.equal((await plain.json()).error.code, 'upgrade_required')
  // The query token is for the stream only: REST routes still want the header.
  t.equal((await fetch(`${lab.base}/v1/machines?token=${TOKENS.alice}`)).status, 401)

  for (const opts of [{ headers: alice }, { query: `?token=${TOKENS.alice}` }]) {
    const c = await StreamClient.open(lab, id, opts)
    t.match(await c.next(), { type: 'hello' })
    c.close()
    await c.closed
  }
  const logs = lab.logs.join('\n')
  t.notMatch(logs, TOKENS.alice)
  t.match(logs, /stream\?token=\[Redacted\]/)
})

t.test('a machine that halts while watched ends the stream with `halted`, as does subscribing to one', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  const c = await StreamClient.open(lab, id)
  c.send({ type: 'subscribe', types: ['kmap'] })
  await c.ofType('live')
  // The 17th nested kmap_local_page overflows KM_MAX_IDX: BUG B1, and the machine halts.
  const nested = Array.from({ length: 17 }, (_, i) => ({ op: 'kmap_local_page', pid: 1, page: 0x40000 + i }))
  await lab.post(`/v1/machines/${id}/ops`, { ops: nested })
  const state = await (await fetch(`${lab.base}/v1/machines/${id}/state`)).json()
  t.equal(state.status, 'halted')
  const halted = await c.ofType('halted')
  t.match(halted, { seq: state.seq, reason: /kernel BUG at mm\/highmem.c kmap_local_idx_push/ })
  t.same(await c.closed, { code: 1000, reason: 'machine halted' })

  const late = await StreamClient.open(lab, id)
  late.send({ type: 'subscribe', after: state.seq - 1 })
  t.match(await late.ofType('halted'), { seq: state.seq })
  t.equal((await late.closed).code, 1000)
})

t.test('a machine deleted while watched ends the stream with `deleted` (4004)', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  const c = await StreamClient.open(lab, id)
  c.send({ type: 'subscribe' })
  await c.ofType('live')
  const idle = await StreamClient.open(lab, id)
  await idle.next()
  t.equal((await fetch(`${lab.base}/v1/machines/${id}`, { method: 'DELETE' })).status, 204)
  t.match(await c.ofType('deleted'), {})
  t.same(await c.closed, { code: 4004, reason: 'machine deleted' })
  // A socket without a subscription learns it at its next message.
  idle.send({ type: 'subscribe' })
  t.match(await idle.ofType('deleted'), {})
  t.equal((await idle.closed).code, 4004)
})

t.test('shutdown answers the ops in flight, then closes every socket with 1001', async (t) => {
  const lab = await listeningLab()
  const id = await machineWithTask(lab)
  const clients = await Promise.all([1, 2, 3].map(() => StreamClient.open(lab, id)))
  for (const c of clients) c.send({ type: 'subscribe' })
  await Promise.all(clients.map((c) => c.ofType('live')))
  clients[0]!.send({ id: 'last', ops: mapUnmap(100) })
  await new Promise((r) => setTimeout(r, 5))
  await lab.close()
  for (const c of clients) t.same(await c.closed, { code: 1001, reason: 'server shutting down' })
  const answered = clients[0]!.messages.find((m) => m.id === 'last')
  t.match(answered ?? { type: 'none' }, { type: /result|error/ }, 'the op sent before shutdown was answered')
  t.equal(lab.app.websocketServer.clients.size, 0)
})

t.test('the metrics count subscribers', async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const id = await machineWithTask(lab)
  const c = await StreamClient.open(lab, id)
  c.send({ type: 'subscribe' })
  await c.ofType('live')
  t.match(await (await fetch(`${lab.base}/metrics`)).text(), /^kmaplab_subscribers 1$/m)
  c.close()
  await c.closed
  await new Promise((r) => setTimeout(r, 20))
  t.match(await (await fetch(`${lab.base}/metrics`)).text(), /^kmaplab_subscribers 0$/m)
})
