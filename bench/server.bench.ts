// Server figures, each beside a baseline measured in the same run:
// - single-op HTTP requests/s vs a fastify hello-world with the same (pino) request logging,
//   and against the same baseline two references that split the gap: the lab with a writer
//   that stores nothing (bench/unstored-lab.ts) and a minimal durable server
//   (bench/durable-hello.ts);
// - committed ops/s in batches of 1,000 vs raw better-sqlite3 inserts of the same event rows;
// - start-up time to /readyz with 1,000 stored machines vs with an empty database.
// Servers run as child processes on loopback; autocannon drives them from this process.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import Database from 'better-sqlite3'
import pino from 'pino'
import { Hub } from '../src/service/hub.js'
import { MachineService } from '../src/service/machines.js'
import { openDb } from '../src/store/db.js'
import { Repo } from '../src/store/repo.js'
import { GroupWriter } from '../src/store/writer.js'
import { post, startChild, startLab } from './child.js'
import type { BenchOptions, BenchRow } from './types.js'

const CONNECTIONS = 50
const SLOT0_CPU0 = '0xfffbb000'
const MACHINE = { arch: 'x86_32', cpus: 2, seed: 1 }
const MAP = { op: 'kmap_local_page', pid: 1, page: 0x40000 }

// The baseline: fastify's hello world with the lab's logger setup (pino JSON, request logging on).
const HELLO = `
import fastify from 'fastify'
import pino from 'pino'
const app = fastify({ loggerInstance: pino({ level: 'info' }) })
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
`

function load(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => autocannon(opts, (err, res) => (err ? reject(err) : resolve(res))))
}

/** A load run after a second of the same load, so that every server is measured warm (JIT, pools). */
async function cannon(opts: autocannon.Options): Promise<autocannon.Result> {
  await load({ ...opts, duration: 1 })
  return load(opts)
}

/**
 * Single-op requests/s of a lab server (`entry` starts it) under CONNECTIONS clients. One
 * machine per connection, so that each connection can alternate map and unmap safely.
 */
async function labSingleOps(dir: string, seconds: number, db: string, entry?: string): Promise<number> {
  const lab = await startLab(dir, { KMAPLAB_DB: join(dir, db) }, entry)
  const machines = async (): Promise<string[]> => {
    const ids: string[] = []
    for (let i = 0; i < CONNECTIONS; i++) {
      const m = await post(lab.base, '/v1/machines', MACHINE)
      await post(lab.base, `/v1/machines/${m.id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })
      ids.push(m.id)
    }
    return ids
  }
  // autocannon walks `requests` in order per connection with a fresh context each round: a
  // round borrows a machine, maps a page on it, unmaps it, and gives the machine back. A run
  // may end between the two, so the warm-up second has machines of its own.
  const rounds = (free: string[]): autocannon.Options['requests'] => {
    const json = { 'content-type': 'application/json' }
    type Ctx = { machine?: string }
    return [
      {
        method: 'POST',
        headers: json,
        setupRequest: (req, context) => {
          const ctx = context as Ctx
          ctx.machine = free.pop()!
          return { ...req, path: `/v1/machines/${ctx.machine}/ops`, body: JSON.stringify(MAP) }
        },
      },
      {
        method: 'POST',
        headers: json,
        setupRequest: (req, context) => ({
          ...req,
          path: `/v1/machines/${(context as Ctx).machine}/ops`,
          body: JSON.stringify({ op: 'kunmap_local', pid: 1, addr: SLOT0_CPU0 }),
        }),
        onResponse: (_status, _body, context) => void free.push((context as Ctx).machine!),
      },
    ]
  }
  const opts = { url: lab.base, connections: CONNECTIONS }
  await load({ ...opts, duration: 1, requests: rounds(await machines()) })
  const res = await load({ ...opts, duration: seconds, requests: rounds(await machines()) })
  await lab.stop()
  if (res.non2xx > 0 || res.errors > 0) throw new Error(`single-op bench (${entry ?? 'lab'}): ${res.non2xx} non-2xx, ${res.errors} errors`)
  return res.requests.average
}

/**
 * The lab's single-op figure against fastify's hello world (the target), and two
 * references that tell where the rest goes: the same lab with a writer that stores nothing
 * (everything but storage), and a minimal durable server (durability alone).
 */
async function singleOps(dir: string, seconds: number): Promise<BenchRow[]> {
  const hello = await startChild(['--input-type=module', '-e', HELLO], {}, dir)
  const base = (await cannon({ url: hello.base, connections: CONNECTIONS, duration: seconds })).requests.average
  await hello.stop()

  const durable = await startChild(['--import', 'tsx', 'bench/durable-hello.ts'], { KMAPLAB_DB: join(dir, 'durable.db') }, dir)
  const body = JSON.stringify(MAP)
  const minimal = await cannon({ url: durable.base + '/ops', method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: CONNECTIONS, duration: seconds })
  await durable.stop()
  if (minimal.non2xx > 0 || minimal.errors > 0) throw new Error(`durable baseline: ${minimal.non2xx} non-2xx, ${minimal.errors} errors`)

  const lab = await labSingleOps(dir, seconds, 'single.db')
  const unstored = await labSingleOps(dir, seconds, 'unstored.db', 'bench/unstored-lab.ts')
  const row = (id: string, name: string, value: number, target?: number): BenchRow => ({
    id,
    name,
    value,
    unit: 'req/s',
    baselineName: 'fastify hello-world, same logging',
    baseline: base,
    ratio: value / base,
    ...(target === undefined ? {} : { target: `>= ${target}`, ok: value / base >= target }),
  })
  return [
    row('http-single-op', 'single-op requests/s (fsync per group commit)', lab, 0.5),
    row('http-single-op-unstored', 'reference: the same lab, its writer storing nothing', unstored),
    row('http-durable-minimal', 'reference: minimal durable server (a row per request, fsync per group commit)', minimal.requests.average),
  ]
}

function mapUnmapBatch(ops: number): unknown[] {
  return Array.from({ length: ops }, (_, i) => (i % 2 === 0 ? { op: 'kmap_local_page', pid: 1, page: 0x40000 + i } : { op: 'kunmap_local', pid: 1, addr: SLOT0_CPU0 }))
}

async function batchedOps(dir: string, batches: number): Promise<BenchRow> {
  const file = join(dir, 'batch.db')
  const lab = await startLab(dir, { KMAPLAB_DB: file })
  const m = await post(lab.base, '/v1/machines', MACHINE)
  await post(lab.base, `/v1/machines/${m.id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })
  const body = { ops: mapUnmapBatch(1000) }
  await post(lab.base, `/v1/machines/${m.id}/ops`, body) // warm-up
  // The client's own work stays out of the figure: the body is serialised once, and each
  // reply (~420 KB of results and events) is drained without parsing; the op count read
  // back afterwards proves every batch ran whole.
  const request = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
  const started = performance.now()
  for (let i = 0; i < batches; i++) {
    const res = await fetch(`${lab.base}/v1/machines/${m.id}/ops`, request)
    await res.arrayBuffer()
    if (res.status !== 200) throw new Error(`batch ${i}: ${res.status}`)
  }
  // Events are stored after their ops' commit: the clock stops once the last one is stored
  // too (a trace read waits for that), so the figure counts every event row as written.
  const { seq, opCount } = (await (await fetch(`${lab.base}/v1/machines/${m.id}`)).json()) as { seq: number; opCount: number }
  const tail = (await (await fetch(`${lab.base}/v1/machines/${m.id}/events?after=${seq - 1}`)).json()) as { events: { seq: number }[] }
  const seconds = (performance.now() - started) / 1000
  if (tail.events[0]?.seq !== seq) throw new Error(`batch bench: the last stored event is not seq ${seq}`)
  if (opCount !== 1 + 1000 * (batches + 1)) throw new Error(`batch bench: ${opCount} ops stored, expected ${1 + 1000 * (batches + 1)}`)
  await lab.stop()

  // The same event rows, inserted raw: one transaction per 1,000 ops, same schema and pragmas.
  const src = new Database(file, { readonly: true })
  const rows = src.prepare('SELECT e.seq, e.type, e.cpu, e.pid, e.body FROM events e JOIN machines m ON m.key = e.mkey WHERE m.id = ? AND e.seq > 2 ORDER BY e.seq').all(m.id) as { seq: number; type: string; cpu: number; pid: number; body: string }[]
  src.close()
  const perBatch = Math.floor(rows.length / (batches + 1))
  const raw = openDb(join(dir, 'raw.db'))
  const insert = raw.prepare('INSERT INTO events (mkey, seq, type, cpu, pid, body) VALUES (?, ?, ?, ?, ?, ?)')
  const tx = raw.transaction((chunk: typeof rows) => {
    for (const r of chunk) insert.run(1, r.seq, r.type, r.cpu, r.pid, r.body)
  })
  const rawStarted = performance.now()
  for (let i = 0; i < batches; i++) tx(rows.slice(i * perBatch, (i + 1) * perBatch))
  const rawSeconds = (performance.now() - rawStarted) / 1000
  raw.close()

  const value = (batches * 1000) / seconds
  const baseline = (batches * 1000) / rawSeconds
  return {
    id: 'http-batch-commit',
    name: 'committed ops/s, HTTP batches of 1,000',
    value,
    unit: 'ops/s',
    baselineName: 'raw better-sqlite3 inserts of the same events',
    baseline,
    ratio: value / baseline,
    target: '>= 0.5',
    ok: value / baseline >= 0.5,
  }
}

async function restart(dir: string, machines: number): Promise<BenchRow> {
  const timeToReady = async (db: string): Promise<number> => {
    const started = performance.now()
    const lab = await startLab(dir, { KMAPLAB_DB: db })
    while (!(await fetch(lab.base + '/readyz')).ok) await new Promise((r) => setTimeout(r, 5))
    const ms = performance.now() - started
    await lab.stop()
    return ms
  }
  const full = join(dir, 'restart.db')
  const db = openDb(full, { durability: 'normal' })
  const repo = new Repo(db)
  const service = new MachineService(repo, new GroupWriter(repo), new Hub(), { machinesPerOwner: machines, liveMachines: 10, checkpointEvery: 100 }, pino({ level: 'silent' }))
  for (let i = 0; i < machines; i++) {
    const m = await service.create('local', MACHINE)
    await service.apply('local', m.id, [{ op: 'spawn', name: 'A', cpu: 0 }, ...mapUnmapBatch(20)])
  }
  db.close()
  const empty = await timeToReady(join(dir, 'empty.db'))
  const stored = await timeToReady(full)
  return {
    id: 'restart-stored-machines',
    name: `start-up to /readyz, ${machines} stored machines (lower is better; ratio = empty/stored)`,
    value: stored,
    unit: 'ms',
    baselineName: 'start-up with an empty database',
    baseline: empty,
    ratio: empty / stored,
    target: '>= 0.5 (lazy restore)',
    ok: empty / stored >= 0.5,
  }
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-bench-'))
  return [
    ...(await singleOps(dir, opts.quick ? 3 : 10)),
    await batchedOps(dir, opts.quick ? 10 : 50),
    await restart(dir, 1000),
  ]
}
