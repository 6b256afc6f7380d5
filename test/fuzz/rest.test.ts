// Property-based fuzzing of every REST operation that openapi.yaml lists: hostile paths,
// queries, headers and bodies (see arbitraries.ts). For every input: never a 5xx, a 4xx is in
// the error shape without internals, and a refused request changes nothing (both principals'
// machines and both machines' states compared before and after). Bob's machine is addressed
// by alice too, and must never change. Prints how many inputs were tried.
import t from 'tap'
import fc from 'fast-check'
import { loadSpec, type SpecOperation } from '../../src/api/spec.js'
import { bearer } from '../api/fixtures/lab.js'
import { hostileBody, hostileOpsBody, hostileString, hostileValue, RUNS } from './fixtures/arbitraries.js'
import { World } from './fixtures/world.js'

const configFields = ['arch', 'cpus', 'kernel', 'config', 'layout', 'seed']
const BODIES: Record<string, fc.Arbitrary<unknown>> = {
  createMachine: hostileBody(configFields, fc.record({ arch: fc.constantFrom('x86_32', 'x86_64'), cpus: fc.integer({ min: 1, max: 4 }), seed: fc.integer() })),
  branchMachine: hostileBody(['seq'], fc.record({ seq: fc.nat({ max: 10 }) })),
  spawnTask: hostileBody(['name', 'cpu', 'cpus'], fc.record({ name: fc.constantFrom('C', 'D'), cpu: fc.nat({ max: 2 }) })),
  applyOps: hostileOpsBody,
}

/** A path parameter: mostly the world's own ids (so requests get past the lookup), else garbage. */
function pathParam(world: World, name: string): fc.Arbitrary<() => string> {
  const garbage = fc.oneof(hostileString, hostileValue.map((v) => JSON.stringify(v) ?? 'undefined')).map((s) => () => encodeURIComponent(s.slice(0, 2000)))
  if (name === 'id') return fc.oneof({ weight: 3, arbitrary: fc.constant(() => world.mine) }, fc.constant(() => world.theirs), fc.constant(() => 'm_AAAAAAAAAAAA'), garbage)
  if (name === 'pid') return fc.oneof(fc.constantFrom(() => '1', () => '2', () => '0', () => '2147483648', () => '-1', () => '1.5'), garbage)
  if (name === 'file') return fc.oneof(fc.constantFrom(() => 'app.js', () => 'style.css', () => 'nope.js', () => '..%2Fpackage.json'), garbage)
  return garbage
}

// Valid values of the spec's query parameters, so that some queries get through to the handler.
const PLAUSIBLE_QUERY: Record<string, string[]> = { format: ['jsonl', 'perfetto', 'ftrace'], type: ['kmap', 'sched_switch'], at: ['0', '3'], after: ['0', '2'], limit: ['1', '50'], cpu: ['0', '1'], pid: ['1'] }

function queryOf(op: SpecOperation): fc.Arbitrary<string> {
  const known = Object.keys((op.schema.querystring as { properties?: object } | undefined)?.properties ?? {})
  const plausible = known.flatMap((k) => (PLAUSIBLE_QUERY[k] ?? []).map((v) => [k, v] as [string, string]))
  const name = known.length > 0 ? fc.oneof(fc.constantFrom(...known), fc.string({ maxLength: 8 })) : fc.string({ maxLength: 8 })
  const value = fc.oneof(hostileString, hostileValue.map((v) => String(JSON.stringify(v))), fc.nat({ max: 20 }).map(String))
  const pair = plausible.length > 0 ? fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...plausible) }, fc.tuple(name, value)) : fc.tuple(name, value)
  return fc.oneof(fc.constant([]), fc.array(pair, { minLength: 1, maxLength: 4 })).map((pairs) => (pairs.length === 0 ? '' : '?' + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v.slice(0, 5000))}`).join('&')))
}

function requestOf(world: World, op: SpecOperation) {
  const params = [...op.url.matchAll(/:(\w+)/g)].map((m) => m[1]!)
  const body = BODIES[op.operationId]
  return fc.record({
    path: fc.tuple(...params.map((p) => pathParam(world, p))).map((fns) => () => fns.reduce((url, fn, i) => url.replace(`:${params[i]}`, fn()), op.url)),
    query: queryOf(op),
    body: body ? fc.oneof({ weight: 4, arbitrary: body.map((b) => JSON.stringify(b) ?? 'null') }, fc.constantFrom('{', '', '{"a":1,"a":2}', '\u0000')) : fc.constant(undefined),
    contentType: fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', 'application/x-www-form-urlencoded'),
    idempotencyKey: fc.option(fc.oneof(fc.constantFrom('k1', 'k2'), hostileString.map((s) => s.replace(/[^\x20-\x7e]/g, '').slice(0, 1000))), { nil: undefined }),
    // A third of the inputs are hostile in the body only, so that they reach the handler and the model.
    bodyOnly: fc.nat({ max: 2 }).map((n) => n === 0),
  }).map((req) => (req.bodyOnly ? { ...req, path: () => op.url.replace(':id', world.mine).replace(':pid', '1').replace(':file', 'app.js'), query: '', contentType: 'application/json', idempotencyKey: undefined } : req))
}

t.test('every REST operation under hostile input', async (t) => {
  const world = await World.open({ KMAPLAB_BODY_LIMIT: String(256 * 1024) })
  t.teardown(world.lab.close)
  const operations = loadSpec().operations
  let tried = 0
  const statuses = new Map<string, Record<number, number>>()
  for (const op of operations) {
    const tally: Record<number, number> = {}
    statuses.set(op.operationId, tally)
    await fc.assert(
      fc.asyncProperty(requestOf(world, op), async (req) => {
        tried++
        const before = await world.fingerprint()
        const url = req.path() + req.query
        const res = await world.lab.app.inject({
          method: op.method,
          url,
          headers: {
            ...bearer('alice'),
            ...(req.body === undefined ? {} : { 'content-type': req.contentType }),
            ...(req.idempotencyKey === undefined ? {} : { 'idempotency-key': req.idempotencyKey }),
          },
          ...(req.body === undefined ? {} : { payload: req.body }),
        })
        tally[res.statusCode] = (tally[res.statusCode] ?? 0) + 1
        const where = `${op.method} ${url.slice(0, 120)} ${req.body?.slice(0, 120) ?? ''}`
        if (res.statusCode >= 500) throw new Error(`${where} -> ${res.statusCode} ${res.body.slice(0, 300)}`)
        if (res.statusCode >= 400) {
          if (String(res.headers['content-type']).startsWith('application/json')) {
            const error = (res.json() as { error?: { code?: unknown; message?: unknown } }).error
            if (typeof error?.code !== 'string' || typeof error.message !== 'string') throw new Error(`${where}: ${res.statusCode} not in the error shape: ${res.body.slice(0, 200)}`)
          }
          if (/\n\s+at |SQLITE/.test(res.body)) throw new Error(`${where}: internals in the reply`)
          const after = await world.fingerprint()
          if (after !== before) throw new Error(`${where}: refused with ${res.statusCode} but changed state`)
        }
        await world.repair()
      }),
      { numRuns: RUNS },
    )
  }
  t.equal((await world.lab.app.inject({ url: '/healthz' })).statusCode, 200, 'still healthy')
  t.equal(({} as { polluted?: unknown }).polluted, undefined, 'no prototype pollution')
  for (const [id, tally] of statuses) t.comment(`${id}: ${JSON.stringify(tally)}`)
  t.comment(`fuzz: ${tried} REST inputs over ${operations.length} operations (${RUNS} each; KMAPLAB_FUZZ_RUNS to change)`)
  t.ok(tried >= RUNS * operations.length, `${tried} hostile REST inputs tried`)
})
