// Hostile and broken WebSocket peers against a server in its own process (so that its RSS is
// its own): one that stalls, one that floods malformed frames, a crowd that disconnects in
// the middle of their backlog. The well-behaved reader and the REST writer next to them must
// not notice, every hub subscription of a gone peer must be released, and memory stays bounded.
import t from 'tap'
import WebSocket from 'ws'
import { rssOf } from '../../bench/child.js'
import { mapUnmap, range, StreamClient } from '../api/fixtures/stream.js'
import { tempDbFile } from '../store/fixtures/store.js'
import { call, startServer, type Child } from './fixtures/child.js'

const MAX_BUFFERED = 64 * 1024

/** Frames no server should act on; each must get an `error` reply and leave the socket open. */
const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
const MALFORMED: (string | Buffer)[] = [
  '{',
  'null',
  '[]',
  '"subscribe"',
  Buffer.from([0xff, 0xfe, 0x00, 0x01]), // binary
  '{"type":"unsubscribe"}',
  '{"type":{"nested":[1,2,3]}}',
  `{"type":${deep(5000)}}`,
  `{"id":1,"op":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}}`,
  '{"type":"subscribe","after":-1}',
  '{"type":"subscribe","after":1e308}',
  '{"type":"subscribe","after":"0"}',
  '{"type":"subscribe","cpus":[64]}',
  '{"type":"subscribe","types":["<script>"]}',
  '{"type":"subscribe","extra":true}',
  `{"type":"${'x'.repeat(100_000)}"}`,
  '{"id":null,"op":{"op":"spawn","name":"X"}}',
  '{"id":1}',
  '{"id":1,"op":{"op":"spawn","name":"X"},"ops":[]}',
  '{"id":1,"op":{"op":"kmap_local_page","pid":1,"page":"0xZZ"}}',
  '{"id":1,"op":{"op":"kmap_local_page","pid":-1,"page":1e400}}',
  '{"id":1,"ops":"all"}',
  '{"id":1,"ops":[null]}',
  '{"id":1,"op":{"op":"__proto__","__proto__":{"polluted":true}}}',
]

function open(child: Child, id: string): Promise<StreamClient> {
  const ws = new WebSocket(`${child.base.replace('http', 'ws')}/v1/machines/${id}/stream`)
  const client = new StreamClient(ws)
  return new Promise((resolve, reject) => ws.once('open', () => resolve(client)).once('error', reject))
}

async function subscribers(child: Child): Promise<number> {
  const metrics = await fetch(`${child.base}/metrics`).then((r) => r.text())
  return Number(/^kmaplab_subscribers (\d+)/m.exec(metrics)![1])
}

async function machineWithBacklog(child: Child, batches: number): Promise<{ id: string; seq: number }> {
  const { json } = await call(child.base, 'POST', '/v1/machines', { arch: 'x86_32', cpus: 2, seed: 3 })
  let seq = (await call(child.base, 'POST', `/v1/machines/${json.id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })).json.seq
  for (let i = 0; i < batches; i++) seq = (await call(child.base, 'POST', `/v1/machines/${json.id}/ops`, { ops: mapUnmap(1000) })).json.seq
  return { id: json.id, seq }
}

t.test('a stalled, a flooding and a crowd of vanishing peers leave the others unaffected', async (t) => {
  const child = await startServer({ KMAPLAB_DB: tempDbFile(), KMAPLAB_DURABILITY: 'normal', KMAPLAB_STREAM_MAX_BUFFERED: String(MAX_BUFFERED) })
  t.teardown(() => void child.proc.kill('SIGKILL'))
  const { id, seq: backlog } = await machineWithBacklog(child, 10)
  const rssBefore = rssOf(child.proc.pid!)

  const reader = await open(child, id)
  reader.send({ type: 'subscribe', after: 0 })
  const stalled = await open(child, id)
  stalled.send({ type: 'subscribe', after: 0 })
  stalled.ws.pause()

  // Peers that subscribe to the whole backlog and vanish at once or part-way through it.
  const vanishing = Array.from({ length: 30 }, async (_, i) => {
    const c = await open(child, id)
    c.send({ type: 'subscribe', after: 0 })
    if (i % 2 === 1) await c.ofType('events')
    c.ws.terminate()
  })

  const flooder = await open(child, id)
  let sent = 0
  for (let round = 0; round < 100; round++) for (const frame of MALFORMED) (flooder.ws.send(frame), sent++)

  // The writer: REST batches while all of that goes on; each must succeed.
  let seq = backlog
  for (let i = 0; i < 20; i++) {
    const r = await call(child.base, 'POST', `/v1/machines/${id}/ops`, { ops: mapUnmap(1000) })
    t.equal(r.status, 200)
    seq = r.json.seq
  }
  await Promise.all(vanishing)

  t.same((await reader.eventsUpTo(seq, 30_000)).map((e) => e.seq), range(1, seq), `the reader got every event 1..${seq} once, in order`)
  await flooder.until(() => flooder.messages.length >= sent, 30_000)
  t.equal(flooder.messages.filter((m) => m.type === 'error').length, sent, `each of ${sent} malformed frames got an error reply`)
  t.equal(flooder.ws.readyState, WebSocket.OPEN, 'and the flooder is still connected')

  stalled.ws.resume()
  t.equal((await stalled.closed).code, 4008, 'the stalled peer was cut with lagged')
  // Left: the reader (the flooder never subscribed).
  const deadline = Date.now() + 5000
  while ((await subscribers(child)) !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  t.equal(await subscribers(child), 1, 'every gone peer released its hub subscription')
  const grew = rssOf(child.proc.pid!) - rssBefore
  t.ok(grew < 96, `server RSS grew ${grew.toFixed(0)} MiB for ${seq - backlog} new events and ${sent} bad frames`)
  t.equal((await call(child.base, 'GET', '/healthz')).status, 200)
  reader.close()
  flooder.close()
})

// A peer that floods frames and never reads would make the server queue a reply per frame;
// the server stops reading such a peer while its replies exceed KMAPLAB_STREAM_MAX_BUFFERED.
t.test('a flooder that never reads its replies is cut or slowed, not buffered for', async (t) => {
  const child = await startServer({ KMAPLAB_DB: tempDbFile(), KMAPLAB_DURABILITY: 'normal', KMAPLAB_STREAM_MAX_BUFFERED: String(MAX_BUFFERED) })
  t.teardown(() => void child.proc.kill('SIGKILL'))
  const { id } = await machineWithBacklog(child, 0)
  const flooder = await open(child, id)
  flooder.ws.pause()
  const rssBefore = rssOf(child.proc.pid!)
  for (let i = 0; i < 200_000; i++) {
    flooder.ws.send('{"type":"subscribe","after":"not a number"}')
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r))
  }
  await new Promise((r) => setTimeout(r, 2000))
  const grew = rssOf(child.proc.pid!) - rssBefore
  t.ok(grew < 16, `server RSS grew ${grew.toFixed(0)} MiB while a peer sent 200,000 frames without reading (bound ${MAX_BUFFERED / 1024} KiB)`)
  flooder.ws.terminate()
})
