// Throws garbage at every operation of the spec: malformed bodies, wrong types, huge numbers,
// unknown ops, other principals' machine ids, oversize payloads, odd paths and queries. Every
// answer must be a 4xx in the error shape (2xx where the garbage happens to be acceptable),
// never a 5xx, and the server must stay healthy.
import t from 'tap'
import fc from 'fast-check'
import { loadSpec } from '../../src/api/spec.js'
import { bearer, config, openSharedLab } from './fixtures/lab.js'

const BODY_LIMIT = 64 * 1024

t.test('every route survives hostile input', async (t) => {
  const lab = await openSharedLab({ KMAPLAB_BODY_LIMIT: String(BODY_LIMIT), KMAPLAB_MAX_MACHINES: '1000', KMAPLAB_RATE_MAX: '1000000' })
  t.teardown(lab.close)
  const create = (who: 'alice' | 'bob') =>
    lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config, headers: bearer(who) }).then((r) => r.json().id as string)
  const mine = await create('alice')
  const theirs = await create('bob')
  await lab.app.inject({ method: 'POST', url: `/v1/machines/${mine}/ops`, payload: { op: 'spawn', name: 'A' }, headers: bearer('alice') })

  const ids = [theirs, 'm_AAAAAAAAAAAA', 'nope', '../../etc/passwd', '%00', 'x'.repeat(300), encodeURIComponent('ü💥'), mine]
  const bodies: (string | undefined)[] = [
    '{',
    '[]',
    'null',
    '"text"',
    '{"op":"kmap_local_page","pid":1,"page":1e400}',
    '{"op":"kmap_local_page","pid":1e30,"page":99999999999999999999999}',
    '{"op":"kmap_local_page","pid":-1,"page":"0xfffffffffffffffffffffff"}',
    '{"op":"__proto__","__proto__":{"polluted":true}}',
    '{"constructor":{"prototype":{"x":1}}}',
    '{"ops":"all of them"}',
    '{"ops":[{"op":"halt_and_catch_fire"}]}',
    '{"ops":[null]}',
    '{"seq":-5}',
    '{"seq":1.5}',
    '{"seq":"1"}',
    '{"name":"' + 'n'.repeat(1000) + '"}',
    '{"arch":"arm64","cpus":0}',
    '{"arch":"x86_32","cpus":2,"layout":{"pkmapBase":"0x1"}}',
    '{"arch":"x86_32","cpus":4,"layout":{"fixKmapBegin":4096,"fixaddrTop":"0x1000"}}',
    JSON.stringify({ ops: Array.from({ length: 5000 }, () => ({ op: 'spawn', name: 'A' })) }),
    JSON.stringify({ pad: 'x'.repeat(BODY_LIMIT + 1) }),
    undefined,
    ...fc.sample(fc.json({ depthSize: 'small' }), { numRuns: 25, seed: 42 }),
  ]
  const queries = ['', '?limit=0', '?limit=99999999999', '?after=-1', '?after=abc', '?at=1e308', '?at=99999999', '?type=<script>', '?cpu=64', '?pid=-3', '?unknown=1', '?limit=1&limit=2']

  let requests = 0
  // Deletes go last, so that the other routes still find the machine.
  const operations = loadSpec().operations.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'))
  let checkedBeforeDeletes = false
  for (const op of operations) {
    if (op.method === 'DELETE' && !checkedBeforeDeletes) {
      const state = await lab.app.inject({ url: `/v1/machines/${mine}/state`, headers: bearer('alice') })
      t.equal(state.statusCode, 200, 'a machine that took hostile ops is still served')
      checkedBeforeDeletes = true
    }
    const urls = op.url.includes(':id') ? ids.map((id) => op.url.replace(':id', id).replace(':pid', '1')) : [op.url]
    if (op.url.includes(':pid')) urls.push(op.url.replace(':id', mine).replace(':pid', '99999999999'), op.url.replace(':id', mine).replace(':pid', 'x'))
    for (const url of urls) {
      for (const q of op.method === 'GET' ? queries : ['', '?unknown=1']) {
        for (const payload of op.method === 'GET' || op.method === 'DELETE' ? [undefined] : bodies) {
          for (const contentType of payload === undefined ? [undefined] : ['application/json', 'text/plain']) {
            const res = await lab.app.inject({
              method: op.method,
              url: url + q,
              headers: { ...bearer('alice'), ...(contentType ? { 'content-type': contentType } : {}), 'idempotency-key': 'k'.repeat(requests % 3 === 0 ? 300 : 5) },
              ...(payload === undefined ? {} : { payload }),
            })
            requests++
            const where = `${op.method} ${url.slice(0, 60)}${q} ${payload?.slice(0, 40) ?? ''}`
            if (res.statusCode >= 500) t.fail(`${where} -> ${res.statusCode} ${res.body.slice(0, 200)}`)
            if (res.statusCode >= 400) {
              const body = res.json() as { error?: { code?: unknown; message?: unknown } }
              if (typeof body.error?.code !== 'string' || typeof body.error.message !== 'string') t.fail(`${where}: not the error shape`)
              if (/\n\s+at /.test(res.body)) t.fail(`${where}: stack trace in the reply`)
            }
          }
        }
      }
    }
  }
  t.ok(requests > 1000, `${requests} hostile requests`)
  t.equal(({} as { polluted?: boolean }).polluted, undefined, 'no prototype pollution')
  t.equal((await lab.app.inject({ url: '/healthz' })).statusCode, 200)
  t.equal((await lab.app.inject({ url: '/readyz' })).statusCode, 200)
  const theirState = await lab.app.inject({ url: `/v1/machines/${theirs}/state`, headers: bearer('bob') })
  t.equal(theirState.json().seq, 0, "bob's machine was never touched by alice's requests")
})
