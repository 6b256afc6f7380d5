// Memory per idle live machine: the server's RSS growth (after a full GC) for N machines, each
// created and given one task, all held live, per machine; beside a baseline process holding N
// plain objects of the same size (copies of one such machine's state document, the data a
// live machine stands for), per object. Lower is better; ratio = baseline / value.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { post, probe, startChild, startLab } from './child.js'
import type { BenchOptions, BenchRow } from './types.js'

const MACHINE = { arch: 'x86_32', cpus: 2, seed: 1 }
const CONCURRENCY = 16
const WARM_UP = 200

// The baseline: N copies of the state document, measured the same way (RSS after a full GC).
const PLAIN = `
const n = Number(process.env.N), doc = process.env.STATE
const rss = () => (gc(), gc(), process.memoryUsage().rss)
const keep = [JSON.parse(doc)]
const before = rss()
for (let i = 1; i <= n; i++) keep.push(JSON.parse(doc))
console.log('PER ' + (rss() - before) / n + ' ' + keep.length)
console.log('PORT 0')
`

async function createIdle(base: string, n: number): Promise<string> {
  let last = ''
  let made = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (made < n) {
      made++
      const { id } = await post(base, '/v1/machines', MACHINE)
      await post(base, `/v1/machines/${id}/ops`, { op: 'spawn', name: 'A', cpu: 0 })
      last = id
    }
  }))
  return last
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const n = opts.quick ? 2000 : 10_000
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-bench-mem-'))
  const lab = await startLab(dir, { KMAPLAB_DB: join(dir, 'mem.db'), KMAPLAB_DURABILITY: 'normal', KMAPLAB_LIVE_MACHINES: String(n + WARM_UP) })
  await createIdle(lab.base, WARM_UP) // JIT, statement caches, SQLite's page cache
  const before = (await probe(lab, true)).rssMiB
  const last = await createIdle(lab.base, n)
  const after = (await probe(lab, true)).rssMiB
  const metrics = await (await fetch(lab.base + '/metrics')).text()
  const live = Number(/^kmaplab_live_machines (\d+)/m.exec(metrics)?.[1])
  const state = await (await fetch(`${lab.base}/v1/machines/${last}/state`)).text()
  await lab.stop()
  if (live !== n + WARM_UP) throw new Error(`expected ${n + WARM_UP} live machines, the server holds ${live}`)

  const plain = await startChild(['--expose-gc', '-e', PLAIN], { N: String(n), STATE: state }, dir)
  const baseline = Number(/^PER (\S+)/m.exec(plain.output())![1]) / 1024
  await plain.stop()
  const value = ((after - before) * 1024) / n
  return [{
    id: 'rss-per-live-machine',
    name: `RSS per idle live machine, ${n.toLocaleString('en-US')} live (lower is better; ratio = baseline/value)`,
    value,
    unit: 'KiB',
    baselineName: `plain objects of the same size (its ${state.length}-byte state document, parsed)`,
    baseline,
    ratio: baseline / value,
  }]
}
