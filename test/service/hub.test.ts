import t from 'tap'
import { Hub, type HubMessage } from '../../src/service/hub.js'
import type { SimEvent } from '../../src/service/model.js'

const ev = (seq: number, type = 'kmap', cpu = 0, pid = 1): SimEvent => ({ seq, type, cpu, pid })
const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

t.test('delivers only what the filter asks for, per machine', async (t) => {
  const hub = new Hub()
  const got: HubMessage[] = []
  hub.subscribe('m1', { types: ['kunmap'], pids: [2] }, (m) => void got.push(m))
  hub.publish('m1', [ev(1), ev(2, 'kunmap', 0, 2), ev(3, 'kunmap', 0, 3)])
  hub.publish('m2', [ev(1, 'kunmap', 0, 2)])
  await tick()
  t.same(got, [{ kind: 'events', events: [ev(2, 'kunmap', 0, 2)] }])
  t.equal(hub.subscribers, 1)
})

t.test('a slow listener is held to its pace, in order, with no gap', async (t) => {
  const hub = new Hub(100)
  const seen: number[] = []
  let release!: () => void
  hub.subscribe('m', {}, async (m) => {
    if (m.kind !== 'events') return
    seen.push(...m.events.map((e) => e.seq))
    if (seen.length === 1) await new Promise<void>((r) => (release = r))
  })
  hub.publish('m', [ev(1)])
  await tick()
  hub.publish('m', [ev(2), ev(3)])
  hub.publish('m', [ev(4)])
  await tick()
  t.same(seen, [1], 'nothing more while the listener is busy')
  release()
  await tick()
  t.same(seen, [1, 2, 3, 4])
})

t.test('a listener too far behind gets one lagged message and is dropped', async (t) => {
  const hub = new Hub(3)
  const got: HubMessage[] = []
  hub.subscribe('m', {}, (m) => {
    got.push(m)
    return m.kind === 'events' ? new Promise(() => {}) : undefined // never finishes
  })
  hub.publish('m', [ev(1)])
  await tick()
  hub.publish('m', [ev(2), ev(3)])
  hub.publish('m', [ev(4), ev(5)])
  t.same(got.at(-1), { kind: 'lagged', resumeAfter: 1 })
  t.equal(hub.subscribers, 0)
  hub.publish('m', [ev(6)])
  t.equal(got.length, 2, 'nothing after the lagged message')
})

t.test('unsubscribe, a throwing listener and a deleted machine all end a subscription', async (t) => {
  const hub = new Hub()
  const off = hub.subscribe('m', {}, () => {})
  hub.subscribe('m', {}, () => {
    throw new Error('socket closed')
  })
  hub.subscribe('other', {}, () => {})
  t.equal(hub.subscribers, 3)
  off()
  off()
  t.equal(hub.subscribers, 2)
  hub.publish('m', [ev(1)])
  await tick()
  t.equal(hub.subscribers, 1)
  hub.closeMachine('other')
  t.equal(hub.subscribers, 0)
})
