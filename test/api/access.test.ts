// Principals, tokens, ownership, limits and what reaches the logs.
import t from 'tap'
import { readSettings, SettingsError } from '../../src/api/settings.js'
import { bearer, config, openLab, openSharedLab, TOKENS } from './fixtures/lab.js'

t.test('no token, a wrong token: 401 with a Bearer challenge; probes need none', async (t) => {
  const lab = await openSharedLab()
  t.teardown(lab.close)
  for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic YWxpY2U6eA==' }, { authorization: `Bearer ${TOKENS.alice}x` }]) {
    const res = await lab.app.inject({ url: '/v1/machines', headers })
    t.equal(res.statusCode, 401)
    t.equal(res.headers['www-authenticate'], 'Bearer realm="kmaplab"')
    t.equal(res.json().error.code, 'unauthorized')
  }
  t.equal((await lab.app.inject({ url: '/v1/machines', headers: bearer('alice') })).statusCode, 200)
  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.yaml']) t.equal((await lab.app.inject({ url })).statusCode, 200, url)
})

t.test("another principal's machine does not exist for them", async (t) => {
  const lab = await openSharedLab()
  t.teardown(lab.close)
  const id = (await lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config, headers: bearer('alice') })).json().id as string
  for (const [method, url, payload] of [
    ['GET', `/v1/machines/${id}`],
    ['DELETE', `/v1/machines/${id}`],
    ['GET', `/v1/machines/${id}/state`],
    ['GET', `/v1/machines/${id}/events`],
    ['GET', `/v1/machines/${id}/tasks`],
    ['POST', `/v1/machines/${id}/tasks`, { name: 'X' }],
    ['POST', `/v1/machines/${id}/ops`, { op: 'spawn', name: 'X' }],
    ['POST', `/v1/machines/${id}/branches`, { seq: 0 }],
  ] as const) {
    const res = await lab.app.inject({ method, url, headers: bearer('bob'), ...(payload ? { payload } : {}) })
    t.equal(res.statusCode, 404, `${method} ${url}`)
  }
  t.same((await lab.app.inject({ url: '/v1/machines', headers: bearer('bob') })).json().machines, [])
  t.equal((await lab.app.inject({ url: `/v1/machines/${id}`, headers: bearer('alice') })).statusCode, 200)
})

t.test('tokens never reach the logs', async (t) => {
  const lab = await openSharedLab({ LOG_LEVEL: 'trace' })
  t.teardown(lab.close)
  await lab.app.inject({ url: '/v1/machines', headers: bearer('alice') })
  await lab.app.inject({ url: '/v1/machines', headers: bearer('bob') })
  await lab.app.inject({ url: '/v1/machines', headers: { authorization: 'Bearer wrong-secret-token' } })
  const logs = lab.logs.join('')
  t.ok(logs.length > 0)
  for (const secret of [TOKENS.alice, TOKENS.bob, 'wrong-secret-token']) t.notOk(logs.includes(secret), 'no token in logs')
})

t.test('limits: body size 413, batch size 413, rate 429 with Retry-After, machines per principal', async (t) => {
  const lab = await openLab({ KMAPLAB_BODY_LIMIT: '2048', KMAPLAB_MAX_BATCH: '5', KMAPLAB_RATE_MAX: '12', KMAPLAB_RATE_WINDOW_MS: '60000', KMAPLAB_MAX_MACHINES: '1' })
  t.teardown(lab.close)
  const id = (await lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config })).json().id as string
  const big = await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: { ops: Array.from({ length: 100 }, () => ({ op: 'spawn', name: 'A' })) } })
  t.equal(big.statusCode, 413)
  t.equal(big.json().error.code, 'payload_too_large')
  const many = await lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: { ops: Array.from({ length: 6 }, () => ({ op: 'spawn', name: 'A' })) } })
  t.match(many.json(), { error: { code: 'batch_too_large', field: 'ops' } })
  t.equal(many.statusCode, 413)
  t.match((await lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config })).json(), { error: { code: 'machine_limit' } })
  let limited
  for (let i = 0; i < 12 && !limited; i++) {
    const res = await lab.app.inject({ url: '/v1/machines' })
    if (res.statusCode === 429) limited = res
  }
  t.ok(limited, 'the rate limit was reached')
  t.match(limited!.json(), { error: { code: 'rate_limited' } })
  t.ok(Number(limited!.headers['retry-after']) >= 1)
  t.equal((await lab.app.inject({ url: '/healthz' })).statusCode, 200, 'probes are not rate-limited')
})

t.test('settings: no tokens means loopback only; bad values are explained', async (t) => {
  t.throws(() => readSettings({ HOST: '0.0.0.0' }), { name: 'SettingsError', message: /refusing to listen on 0\.0\.0\.0 without access control/ })
  t.equal(readSettings({ HOST: '0.0.0.0', KMAPLAB_TOKENS: 'a=b' }).host, '0.0.0.0')
  t.equal(readSettings({}).host, '127.0.0.1')
  t.throws(() => readSettings({ PORT: 'eighty' }), SettingsError)
  t.throws(() => readSettings({ KMAPLAB_TOKENS: 'justatoken' }), /name=token/)
  t.throws(() => readSettings({ KMAPLAB_TOKENS: 'a=x,a=y' }), /configured twice/)
  t.throws(() => readSettings({ KMAPLAB_DURABILITY: 'maybe' }), SettingsError)
  t.equal(readSettings({}).dbMaxBytes, undefined, 'no quota unless one is set')
  t.equal(readSettings({ KMAPLAB_DB_MAX_MB: '5' }).dbMaxBytes, 5 * 1024 * 1024)
  for (const bad of ['0', '-3', '1.5', 'lots']) {
    t.throws(() => readSettings({ KMAPLAB_DB_MAX_MB: bad }), { name: 'SettingsError', message: `KMAPLAB_DB_MAX_MB=${bad}: expected an integer from 1 to 1048576` })
  }
})
