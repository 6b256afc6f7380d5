// Slow and dead peers: a client that stops reading is cut with `lagged` once its socket holds
// more than the bound, while the others keep receiving; a peer that stops answering pings is
// dropped by the heartbeat.
import t from 'tap'
import { listeningLab, machineConfig, mapUnmap, range, StreamClient } from './fixtures/stream.js'

const MAX_BUFFERED = 64 * 1024

t.test('a stalled client is cut with lagged and resumes from resumeAfter; the others keep receiving', async (t) => {
  const lab = await listeningLab({ KMAPLAB_STREAM_MAX_BUFFERED: String(MAX_BUFFERED) })
  t.teardown(lab.close)
  const { id } = await lab.post('/v1/machines', machineConfig)
  await lab.post(`/v1/machines/${id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })
  const stalled = await StreamClient.open(lab, id)
  const healthy = await StreamClient.open(lab, id)
  for (const c of [stalled, healthy]) {
    c.send({ type: 'subscribe', after: 0 })
    await c.ofType('live')
  }
  stalled.ws.pause()

  // Loopback buffers take a few MB before the server's socket starts holding bytes itself.
  let seq = 0
  let batches = 0
  while (lab.hub.subscribers === 2 && batches < 60) {
    seq = (await lab.post(`/v1/machines/${id}/ops`, { ops: mapUnmap(1000) })).seq
    batches++
  }
  t.equal(lab.hub.subscribers, 1, `the stalled subscriber was cut after ${batches} batches (${seq} events)`)
  for (let i = 0; i < 3; i++) seq = (await lab.post(`/v1/machines/${id}/ops`, { ops: mapUnmap(1000) })).seq
  t.same((await healthy.eventsUpTo(seq)).map((e) => e.seq), range(1, seq), 'the healthy client got everything')

  // Reading again, the stalled client finds what was sent to it, then the lagged message.
  stalled.ws.resume()
  const lagged = await stalled.ofType('lagged')
  t.same(await stalled.closed, { code: 4008, reason: 'too far behind: resume after resumeAfter' })
  const got = stalled.events().map((e) => e.seq)
  t.same(got, range(1, lagged.resumeAfter), 'no gap before the cut, and resumeAfter is the last seq sent')
  t.ok(lagged.resumeAfter < seq, 'cut before the end')

  const resumed = await StreamClient.open(lab, id)
  resumed.send({ type: 'subscribe', after: lagged.resumeAfter })
  t.same((await resumed.eventsUpTo(seq)).map((e) => e.seq), range(lagged.resumeAfter + 1, seq), 'resumed exactly')
  resumed.close()
  healthy.close()
})

t.test('the heartbeat drops a peer that does not answer pings, and keeps one that does', async (t) => {
  const lab = await listeningLab({ KMAPLAB_STREAM_HEARTBEAT_MS: '100' })
  t.teardown(lab.close)
  const { id } = await lab.post('/v1/machines', machineConfig)
  // The registry's ticks are shared by all peers: the first one after the mute peer connects
  // pings it, the next drops it, so the drop comes at least one interval after it connected
  // (timed from the subscribe instead, a tick just before it made this read 97 ms).
  const started = Date.now()
  const mute = await StreamClient.open(lab, id, { autoPong: false })
  const lively = await StreamClient.open(lab, id)
  for (const c of [mute, lively]) {
    c.send({ type: 'subscribe' })
    await c.ofType('live')
  }
  const { code } = await mute.closed
  const waited = Date.now() - started
  t.equal(code, 1006, 'cut without a close handshake')
  t.ok(waited >= 100 && waited < 1000, `dropped after ${waited} ms (interval 100 ms)`)
  await new Promise((r) => setTimeout(r, 300))
  t.equal(lively.ws.readyState, lively.ws.OPEN, 'the answering peer is kept')
  t.equal(lab.hub.subscribers, 1)
  lively.close()
})
