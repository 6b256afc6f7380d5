// Backlog-to-live handoff under load: while writers apply ops as fast as they can (over REST
// and over a socket), readers keep dropping their connection and resuming from the last seq
// they saw. Put together, every reader must see every event exactly once, in order.
import t from 'tap'
import { listeningLab, machineConfig, mapUnmap, range, StreamClient, type ListeningLab } from './fixtures/stream.js'

const ROUNDS = 150

/** Applies `rounds` small batches over REST, one at a time, and returns the last seq. */
async function restWriter(lab: ListeningLab, id: string, rounds: number): Promise<number> {
  let seq = 0
  for (let i = 0; i < rounds; i++) seq = (await lab.post(`/v1/machines/${id}/ops`, { ops: mapUnmap(2 + (i % 5) * 2) })).seq
  return seq
}

/** Same over a socket, several batches in flight at once. */
async function socketWriter(lab: ListeningLab, id: string, rounds: number): Promise<void> {
  const c = await StreamClient.open(lab, id)
  for (let i = 0; i < rounds; i++) {
    c.send({ id: i, ops: mapUnmap(4) })
    if (i % 4 === 3) await c.next((m) => m.id === i)
  }
  await c.until(() => c.messages.some((m) => m.id === rounds - 1))
  c.close()
}

/**
 * Connects, subscribes after the last seq seen, reads for a while, disconnects, and does it
 * again until `done()` and it has caught up with `finalSeq()`. Returns every seq received.
 */
async function resumingReader(lab: ListeningLab, id: string, done: () => number | undefined): Promise<{ seen: number[]; connections: number }> {
  const seen: number[] = []
  let last = 0
  for (let round = 0; ; round++) {
    const c = await StreamClient.open(lab, id)
    c.send({ type: 'subscribe', after: last })
    // Leave sometimes before the backlog is over, sometimes after some live events.
    await new Promise((r) => setTimeout(r, (round * 7) % 23))
    const target = done()
    if (target !== undefined && last < target) await c.eventsUpTo(target)
    c.close()
    await c.closed
    for (const e of c.events()) {
      seen.push(e.seq as number)
      last = Math.max(last, e.seq as number)
    }
    if (target !== undefined && last >= target) return { seen, connections: round + 1 }
  }
}

/**
 * Holds publications back and lets them go in order every few ms, so that events are often
 * committed (in the backlog) and not yet published when a reader subscribes: the case where
 * the live side repeats what the backlog has sent.
 */
function delayPublishing(lab: ListeningLab): void {
  const publish = lab.hub.publish.bind(lab.hub)
  const queue: Parameters<typeof publish>[] = []
  const timer = setInterval(() => {
    for (const args of queue.splice(0)) publish(...args)
  }, 3)
  lab.hub.publish = (...args) => void queue.push(args)
  const close = lab.close
  lab.close = async () => {
    clearInterval(timer)
    await close()
  }
}

for (const delayed of [false, true]) {
  t.test(`readers that keep reconnecting see every event once, in order, while ops are applied${delayed ? ' (publication lagging behind commit)' : ''}`, async (t) => {
    const lab = await listeningLab()
    if (delayed) delayPublishing(lab)
    t.teardown(() => lab.close())
    const { id } = await lab.post('/v1/machines', machineConfig)
    await lab.post(`/v1/machines/${id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })

    let finalSeq: number | undefined
    const readers = [1, 2, 3].map(() => resumingReader(lab, id, () => finalSeq))
    // A reader that never reconnects, for comparison: one socket from start to end.
    const steady = await StreamClient.open(lab, id)
    steady.send({ type: 'subscribe', after: 0 })
    await Promise.all([restWriter(lab, id, ROUNDS), socketWriter(lab, id, ROUNDS)])
    finalSeq = (await (await fetch(`${lab.base}/v1/machines/${id}`)).json()).seq as number
    t.ok(finalSeq > 1000, `${finalSeq} events written`)

    const expected = range(1, finalSeq)
    for (const [i, { seen, connections }] of (await Promise.all(readers)).entries()) {
      t.same(seen, expected, `resuming reader ${i + 1}: no gap, no duplicate over ${connections} connections`)
      t.ok(connections >= 10, `reader ${i + 1} reconnected while the writers ran`)
    }
    t.same((await steady.eventsUpTo(finalSeq)).map((e) => e.seq), expected, 'steady reader: no gap, no duplicate')
    steady.close()
  })
}
