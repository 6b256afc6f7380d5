// Property-based fuzzing of the WebSocket protocol (docs/stream.md): subscribe messages with
// hostile filters, op requests with hostile ids and ops, any JSON, non-JSON text, binary and
// deeply nested frames, on one socket of alice's. Every frame must be answered (subscribed,
// result or error), never with a 1011 or a dropped socket, and a refused frame changes
// nothing. Prints how many frames were tried.
import t from 'tap'
import fc from 'fast-check'
import WebSocket from 'ws'
import { bearer } from '../api/fixtures/lab.js'
import { StreamClient, type Msg } from '../api/fixtures/stream.js'
import { hostileOp, hostileOpsBody, hostileValue, plausibleOp, RUNS } from './fixtures/arbitraries.js'
import { World } from './fixtures/world.js'

const subscribe = fc
  .record({
    after: fc.oneof(fc.nat({ max: 3 }), hostileValue),
    types: fc.oneof(fc.constantFrom(['kmap'], ['sched_switch', 'counter']), hostileValue),
    cpus: fc.oneof(fc.constantFrom([0], [0, 1]), hostileValue),
    pids: fc.oneof(fc.constantFrom([1], [2]), hostileValue),
    extra: hostileValue,
  }, { requiredKeys: [] })
  .map((fields) => ({ type: 'subscribe', ...fields }))

const id = fc.oneof(fc.nat(), fc.string({ minLength: 1, maxLength: 10 }))
const opRequest = fc.oneof(
  // Well-formed requests whose op may still be refused by the model, or spoiled in one field.
  fc.record({ id, op: fc.oneof(plausibleOp, hostileOp) }),
  fc.record({ id, ops: fc.array(fc.oneof(plausibleOp, hostileOp), { minLength: 1, maxLength: 3 }) }),
  fc.record({
    id: fc.oneof(id, hostileValue),
    op: fc.oneof(plausibleOp, hostileOp, hostileValue),
    ops: fc.oneof(hostileOpsBody, hostileValue),
    extra: hostileValue,
  }, { requiredKeys: [] }),
)

/** A frame: JSON text of a message (or of anything), broken text, or binary. */
const frame: fc.Arbitrary<{ data: string | Buffer; binary: boolean }> = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(subscribe, opRequest, hostileValue, fc.record({ type: hostileValue })).map((m) => ({ data: JSON.stringify(m) ?? 'undefined', binary: false })) },
  fc.string({ maxLength: 50 }).map((s) => ({ data: s, binary: false })),
  fc.uint8Array({ maxLength: 64 }).map((b) => ({ data: Buffer.from(b), binary: true })),
  fc.nat({ max: 100_000 }).map((n) => ({ data: '['.repeat(n) + ']'.repeat(n), binary: false })),
)

/** The reply to the frame just sent: the next subscribed, result or error message. */
const isReply = (m: Msg): boolean => m.type === 'subscribed' || m.type === 'result' || m.type === 'error'

t.test('the stream protocol under hostile frames', async (t) => {
  const world = await World.open()
  await world.lab.app.listen({ host: '127.0.0.1', port: 0 })
  const wsBase = `ws://127.0.0.1:${(world.lab.app.server.address() as { port: number }).port}`
  let client: StreamClient | undefined
  let target = ''
  /** A socket on the current target; a new one when the old ended as a stream legitimately may. */
  const socket = async (): Promise<StreamClient> => {
    if (client && target === world.mine && client.ws.readyState === WebSocket.OPEN) return client
    client?.ws.terminate()
    target = world.mine
    const ws = new WebSocket(`${wsBase}/v1/machines/${target}/stream`, { headers: bearer('alice') })
    client = new StreamClient(ws)
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    await client.ofType('hello')
    return client
  }
  // The socket goes first: closing the lab would otherwise wait for it.
  t.teardown(async () => {
    client?.ws.terminate()
    await world.lab.close()
  })

  let tried = 0
  const replies: Record<string, number> = {}
  await fc.assert(
    fc.asyncProperty(frame, async ({ data, binary }) => {
      tried++
      const c = await socket()
      const before = await world.fingerprint()
      c.ws.send(data, { binary })
      const ended = c.closed.then(({ code }) => ({ type: `closed ${code}` }) as Msg)
      const reply = await Promise.race([c.next(isReply), ended])
      const key = reply.type === 'error' ? `error ${reply.error.code}` : String(reply.type)
      replies[key] = (replies[key] ?? 0) + 1
      const what = `${String(data).slice(0, 200)} -> ${JSON.stringify(reply).slice(0, 300)}`
      if (reply.type === 'error' && (reply.error.code === 'internal' || /\n\s+at |SQLITE/.test(JSON.stringify(reply)))) throw new Error(`internal error: ${what}`)
      if (key.startsWith('closed')) {
        // A stream ends on its own only as docs/stream.md says: halted (1000) or deleted (4004).
        const halted = world.lab.service.list('alice', '', 100_000).machines.find((m) => m.id === target)?.status === 'halted'
        if (!(halted && reply.type === 'closed 1000')) throw new Error(`socket ended: ${what}`)
      }
      if (reply.type === 'error' && (await world.fingerprint()) !== before) throw new Error(`refused but changed state: ${what}`)
      await world.repair()
    }),
    { numRuns: RUNS * 5 },
  )
  t.comment(`replies: ${JSON.stringify(replies)}`)
  t.comment(`fuzz: ${tried} WebSocket frames (${RUNS * 5}; KMAPLAB_FUZZ_RUNS x 5)`)
  t.ok(tried >= RUNS * 5, `${tried} hostile frames tried`)
  t.equal((await world.lab.app.inject({ url: '/healthz' })).statusCode, 200, 'still healthy')
})
