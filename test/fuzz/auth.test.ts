// Every operation of openapi.yaml that needs a token refuses a request without one, with a
// wrong or malformed one, or with the token in the query (outside the stream route): 401.
// Another principal's valid token finds none of alice's machines: 404 on every route that
// names one, the WebSocket upgrade included, and an empty list.
import t from 'tap'
import WebSocket from 'ws'
import { loadSpec } from '../../src/api/spec.js'
import { bearer, TOKENS } from '../api/fixtures/lab.js'
import { World } from './fixtures/world.js'

const BAD: Record<string, string>[] = [
  {},
  { authorization: 'Bearer wrong-token' },
  { authorization: `Bearer ${TOKENS.alice}x` },
  { authorization: `Bearer ${TOKENS.alice.slice(0, -1)}` },
  { authorization: `bearer  ${TOKENS.alice} extra` },
  { authorization: `Basic ${Buffer.from(`alice:${TOKENS.alice}`).toString('base64')}` },
  { authorization: TOKENS.alice },
  { authorization: 'Bearer ' },
]

const VALID_BODY: Record<string, object> = {
  createMachine: { arch: 'x86_32', cpus: 2 },
  branchMachine: { seq: 0 },
  spawnTask: { name: 'X' },
  applyOps: { op: 'spawn', name: 'X' },
}

/** The status a WebSocket upgrade was refused with (or 101). */
function upgrade(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once('open', () => (ws.terminate(), resolve(101)))
    ws.once('unexpected-response', (req, res) => (req.destroy(), resolve(res.statusCode!)))
    ws.once('error', reject)
  })
}

t.test('every authenticated route refuses missing, wrong and other principals\' tokens', async (t) => {
  const world = await World.open()
  t.teardown(world.lab.close)
  const { app } = world.lab
  const guarded = loadSpec().operations.filter((op) => !op.public)
  t.ok(guarded.length >= 12, `${guarded.length} authenticated operations`)
  let refused = 0
  for (const op of guarded) {
    // Valid requests in every other respect, so that only the token decides.
    const url = op.url.replace(':id', world.mine).replace(':pid', '1') + (op.operationId === 'exportTrace' ? '?format=jsonl' : '')
    const body = op.method === 'POST' ? { payload: VALID_BODY[op.operationId]! } : {}
    for (const headers of [...BAD, {}]) {
      const query = Object.keys(headers).length === 0 && op.operationId !== 'streamMachine' ? `${url.includes('?') ? '&' : '?'}token=${TOKENS.alice}` : ''
      const res = await app.inject({ method: op.method, url: url + query, headers, ...body })
      if (res.statusCode !== 401) t.fail(`${op.method} ${url}${query} with ${JSON.stringify(headers)}: ${res.statusCode}`)
      refused++
    }
    if (op.url.includes(':id')) {
      const res = await app.inject({ method: op.method, url, headers: bearer('bob'), ...body })
      t.equal(res.statusCode, 404, `bob: ${op.method} ${op.url} -> 404`)
    }
  }
  t.ok(refused > 100, `${refused} requests without a valid token, each refused with 401`)
  const bobs = await app.inject({ url: '/v1/machines', headers: bearer('bob') })
  t.notOk(bobs.body.includes(world.mine), "alice's machine is not in bob's list")

  await app.listen({ host: '127.0.0.1', port: 0 })
  const ws = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/machines/${world.mine}/stream`
  for (const headers of BAD) t.equal(await upgrade(ws, headers), 401, `upgrade with ${JSON.stringify(headers).slice(0, 60)}: 401`)
  t.equal(await upgrade(`${ws}?token=wrong`, {}), 401, 'upgrade with a wrong query token: 401')
  t.equal(await upgrade(ws, bearer('bob')), 404, "upgrade with bob's token to alice's machine: 404")
  t.equal(await upgrade(`${ws}?token=${TOKENS.bob}`, {}), 404, "and with bob's token in the query: 404")
  t.equal(await upgrade(ws, bearer('alice')), 101, 'alice herself gets through')
})
