// `npm run soak [-- --minutes N]`: a bounded soak of the lab server (default 10 minutes) under
// mixed load: REST writers (batches and single ops), REST readers, WebSocket subscribers (one
// resuming from its last seq every few seconds, checked for gaps), ops over a socket, and a
// churn of machines that are filled, exported in all three formats and deleted. Samples the
// server's RSS and event-loop delay (bench/probe.ts, inside the server) and the p99 latency
// of the requests of each interval, then says whether each stayed flat: the median of the
// last quarter of the samples against the first quarter's (after a warm-up), within 25 % plus
// a small absolute slack. Exits 1 on any failed request, a gap, or a figure that grew.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { post, probe, startLab, type Child } from './child.js'

export interface Sample {
  at: number
  rssMiB: number
  lagP99Ms: number
  p99Ms: number
  requests: number
}

export interface Verdict {
  name: string
  first: number
  last: number
  slack: number
  flat: boolean
}

export interface SoakReport {
  seconds: number
  samples: Sample[]
  verdicts: Verdict[]
  requests: number
  exports: number
  resumes: number
  errors: string[]
}

const SLOT0 = '0xfffbb000'
const pairs = (n: number): unknown[] => Array.from({ length: 2 * n }, (_, i) => (i % 2 === 0 ? { op: 'kmap_local_page', pid: 1, page: 0x40000 + i } : { op: 'kunmap_local', pid: 1, addr: SLOT0 }))

/** Latencies of the requests completed since the last `take`. */
class Latencies {
  private ms: number[] = []
  total = 0

  async time<T>(fn: () => Promise<T>): Promise<T> {
    const started = performance.now()
    const out = await fn()
    this.ms.push(performance.now() - started)
    this.total++
    return out
  }

  take(): { p99: number; n: number } {
    const sorted = this.ms.sort((a, b) => a - b)
    this.ms = []
    return { p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0, n: sorted.length }
  }
}

async function machine(base: string): Promise<string> {
  const { id } = await post(base, '/v1/machines', { arch: 'x86_32', cpus: 2, seed: 1 })
  await post(base, `/v1/machines/${id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })
  return id as string
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? 0
}

/** First-quartile vs last-quartile medians of one figure, flat within 25 % plus `slack`. */
function verdict(name: string, xs: number[], slack: number): Verdict {
  const q = Math.max(1, Math.floor(xs.length / 4))
  const first = median(xs.slice(0, q))
  const last = median(xs.slice(-q))
  return { name, first, last, slack, flat: last <= first * 1.25 + slack }
}

export async function soak(opts: { seconds: number; log?: (line: string) => void }): Promise<SoakReport> {
  const log = opts.log ?? (() => {})
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-soak-'))
  const lab: Child = await startLab(dir, { KMAPLAB_DB: join(dir, 'soak.db'), KMAPLAB_DURABILITY: 'normal' })
  const base = lab.base
  const wsBase = base.replace('http', 'ws')
  const errors: string[] = []
  const latencies = new Latencies()
  const deadline = performance.now() + opts.seconds * 1000
  const running = (): boolean => performance.now() < deadline && errors.length < 20
  const fail = (what: string) => (err: unknown) => void errors.push(`${what}: ${(err as Error).message ?? err}`)
  const request = async (method: string, path: string, body?: unknown): Promise<any> =>
    latencies.time(async () => {
      const res = await fetch(base + path, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) })
      const text = await res.text()
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`)
      return text && res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text
    })
  let exports = 0
  let resumes = 0

  const writers = await Promise.all(Array.from({ length: 4 }, () => machine(base)))
  const loops: Promise<void>[] = []
  // Writers: a batch, then a single map and unmap, on each writer's own machine.
  for (const id of writers) {
    loops.push((async () => {
      while (running()) {
        await request('POST', `/v1/machines/${id}/ops`, { ops: pairs(20) })
        await request('POST', `/v1/machines/${id}/ops`, pairs(1)[0])
        await request('POST', `/v1/machines/${id}/ops`, pairs(1)[1])
      }
    })().catch(fail('writer')))
  }
  // Readers: state and a page of recent events of a random writer machine.
  for (let r = 0; r < 2; r++) {
    loops.push((async () => {
      while (running()) {
        const id = writers[Math.floor(Math.random() * writers.length)]!
        const head = await request('GET', `/v1/machines/${id}`)
        await request('GET', `/v1/machines/${id}/state`)
        await request('GET', `/v1/machines/${id}/events?after=${Math.max(0, head.seq - 100)}&limit=100`)
      }
    })().catch(fail('reader')))
  }
  // Churn: a machine filled, exported in every format, deleted.
  loops.push((async () => {
    while (running()) {
      const id = await machine(base)
      await request('POST', `/v1/machines/${id}/ops`, { ops: pairs(200) })
      for (const format of ['jsonl', 'perfetto', 'ftrace']) await request('GET', `/v1/machines/${id}/trace?format=${format}`)
      await request('DELETE', `/v1/machines/${id}`)
      exports++
    }
  })().catch(fail('exporter')))
  // A live subscriber that reconnects every 3 s and resumes after the last seq it saw.
  loops.push((async () => {
    let last = 0
    while (running()) {
      const ws = new WebSocket(`${wsBase}/v1/machines/${writers[0]}/stream`)
      ws.on('message', (data: Buffer) => {
        const msg = JSON.parse(String(data))
        if (msg.type !== 'events') return
        for (const e of msg.events as { seq: number }[]) {
          if (e.seq !== last + 1) errors.push(`stream: seq ${e.seq} after ${last}`)
          last = e.seq
        }
      })
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
      ws.send(JSON.stringify({ type: 'subscribe', after: last }))
      await new Promise((r) => setTimeout(r, 3000))
      ws.close()
      await new Promise((r) => ws.once('close', r))
      resumes++
    }
  })().catch(fail('subscriber')))
  // Ops over a socket, one batch at a time, on a machine of its own.
  const socketMachine = await machine(base)
  loops.push((async () => {
    const ws = new WebSocket(`${wsBase}/v1/machines/${socketMachine}/stream`)
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    for (let id = 0; running(); id++) {
      const reply = await latencies.time(() => new Promise<any>((resolve) => {
        const on = (data: Buffer): void => {
          const msg = JSON.parse(String(data))
          if (msg.id === id) (ws.off('message', on), resolve(msg))
        }
        ws.on('message', on)
        ws.send(JSON.stringify({ id, ops: pairs(10) }))
      }))
      if (reply.type !== 'result' || reply.refused) throw new Error(JSON.stringify(reply).slice(0, 200))
    }
    ws.close()
  })().catch(fail('socket ops')))

  // Samples: about 40 over the run, none during the first 10 % (or 2 s), the warm-up.
  const interval = Math.max(500, (opts.seconds * 1000) / 40)
  const warmUp = Math.max(2000, opts.seconds * 100)
  const samples: Sample[] = []
  const started = performance.now()
  await new Promise((r) => setTimeout(r, warmUp))
  latencies.take()
  await probe(lab)
  while (running()) {
    await new Promise((r) => setTimeout(r, Math.min(interval, deadline - performance.now())))
    const p = await probe(lab)
    const { p99, n } = latencies.take()
    const s = { at: (performance.now() - started) / 1000, rssMiB: p.rssMiB, lagP99Ms: p.lagP99Ms, p99Ms: p99, requests: n }
    samples.push(s)
    log(`${s.at.toFixed(0).padStart(5)} s  rss ${s.rssMiB.toFixed(1)} MiB  loop lag p99 ${s.lagP99Ms.toFixed(1)} ms  request p99 ${s.p99Ms.toFixed(1)} ms  (${n} requests)`)
  }
  await Promise.all(loops)
  await lab.stop()
  const verdicts = [
    verdict('RSS (MiB)', samples.map((s) => s.rssMiB), 16),
    verdict('event-loop lag p99 (ms)', samples.map((s) => s.lagP99Ms), 10),
    verdict('request p99 (ms)', samples.map((s) => s.p99Ms), 10),
  ]
  return { seconds: opts.seconds, samples, verdicts, requests: latencies.total, exports, resumes, errors }
}

export function summary(r: SoakReport): string {
  const lines = [`soak: ${r.seconds} s, ${r.requests} requests, ${r.exports} machines filled, exported x3 and deleted, ${r.resumes} stream resumes, ${r.errors.length} errors`]
  for (const v of r.verdicts) lines.push(`  ${v.name.padEnd(24)} first quarter ${v.first.toFixed(1).padStart(7)}  last quarter ${v.last.toFixed(1).padStart(7)}  ${v.flat ? 'flat' : `GREW (allowed 25 % + ${v.slack})`}`)
  for (const e of r.errors.slice(0, 5)) lines.push(`  error: ${e}`)
  const ok = r.errors.length === 0 && r.verdicts.every((v) => v.flat)
  lines.push(ok ? 'soak: everything stayed flat, no errors' : 'soak: FAILED')
  return lines.join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name)
    return i < 0 ? undefined : Number(process.argv[i + 1])
  }
  const seconds = arg('--seconds') ?? (arg('--minutes') ?? 10) * 60
  const report = await soak({ seconds, log: console.log })
  console.log(summary(report))
  if (report.errors.length > 0 || !report.verdicts.every((v) => v.flat)) process.exitCode = 1
}
