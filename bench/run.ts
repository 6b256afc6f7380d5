// `npm run bench`: runs every bench/*.bench.ts module and prints one table in which each
// figure stands beside a baseline measured in the same run (these machines are noisy, so
// only ratios are comparable between runs). Writes bench/results.json as well.
//
// Every figure's ratio is checked against its floor (bench/floors.ts), in both modes: that
// is the regression check `--quick` exists for. The full run also checks the issues'
// targets, which are goals rather than alarms and too close to the noise for CI.
//
// A bench module exports `run(opts: BenchOptions): Promise<BenchRow[]>`. Each module runs in
// a process of its own: the memory bench leaves 10,000 live machines' worth of heap behind,
// and the model's figures measured after it were a third of what they are alone.
import { execFile } from 'node:child_process'
import { readdir, writeFile } from 'node:fs/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, join } from 'node:path'
import { FLOORS } from './floors.js'
import type { BenchOptions, BenchRow } from './types.js'

const here = dirname(fileURLToPath(import.meta.url))

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n)
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US')
  return n.toPrecision(3)
}

const CHILD_FLAG = '--module='

/** In the child: run one module and hand its rows back on stdout's last line. */
async function runModule(file: string, opts: BenchOptions): Promise<void> {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { run: (o: BenchOptions) => Promise<BenchRow[]> }
  const rows = await mod.run(opts)
  process.stdout.write('\n' + JSON.stringify(rows) + '\n')
}

function runChild(file: string, quick: boolean): Promise<BenchRow[]> {
  const args = ['--import', 'tsx', fileURLToPath(import.meta.url), CHILD_FLAG + file, ...(quick ? ['--quick'] : [])]
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${file} failed: ${err.message}\n${stderr}`))
      const last = stdout.trimEnd().split('\n').at(-1) ?? '[]'
      resolve(JSON.parse(last) as BenchRow[])
    })
  })
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick')
  const opts: BenchOptions = { quick }
  const child = process.argv.find((a) => a.startsWith(CHILD_FLAG))?.slice(CHILD_FLAG.length)
  if (child !== undefined) return runModule(child, opts)
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length)
  const started = performance.now()
  const files = (await readdir(here)).filter((f) => f.endsWith('.bench.ts')).sort()
  const rows: BenchRow[] = []
  for (const f of files) {
    if (only && !f.startsWith(only)) continue
    rows.push(...(await runChild(f, quick)))
  }
  const seconds = (performance.now() - started) / 1000
  const floorOf = (r: BenchRow): number | undefined => FLOORS[r.id]
  const header = ['figure', 'value', 'baseline', 'baseline value', 'ratio', 'floor', 'target']
  const table = rows.map((r) => [
    r.name,
    `${fmt(r.value)} ${r.unit}`,
    r.baselineName,
    `${fmt(r.baseline)} ${r.unit}`,
    r.ratio.toFixed(2),
    String(floorOf(r) ?? 'none'),
    r.target ?? '',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |'
  console.log(line(header))
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
  for (const row of table) console.log(line(row))
  console.log(`${rows.length} figures in ${seconds.toFixed(0)} s (${quick ? 'quick' : 'full'} run, node ${process.version}, ${new Date().toISOString()})`)
  await writeFile(
    join(here, 'results.json'),
    JSON.stringify({ date: new Date().toISOString(), quick, node: process.version, seconds, rows }, null, 2),
  )
  const noFloor = rows.filter((r) => floorOf(r) === undefined)
  const belowFloor = rows.filter((r) => r.ratio < (floorOf(r) ?? -Infinity))
  const belowTarget = quick ? [] : rows.filter((r) => r.ok === false)
  if (noFloor.length > 0) console.log(`no floor in bench/floors.ts: ${noFloor.map((r) => r.id).join(', ')}`)
  if (belowTarget.length > 0) console.log(`below target: ${belowTarget.map((r) => r.id).join(', ')}`)
  if (belowFloor.length > 0) console.log(`REGRESSED below floor: ${belowFloor.map((r) => `${r.id} (${r.ratio.toFixed(2)} < ${floorOf(r)})`).join(', ')}`)
  else console.log('no figure below its floor')
  if (noFloor.length + belowFloor.length + belowTarget.length > 0) process.exitCode = 1
}

await main()
