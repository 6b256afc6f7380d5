// Child processes for the benchmarks and the soak: the lab server and the baselines run in
// their own processes on loopback, so their figures (and RSS) are theirs alone. A child's
// output goes to a file, as a deployment's log would; its port is read back from it.
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ProbeReply } from './probe.js'

export const root = fileURLToPath(new URL('../', import.meta.url))

export interface Child {
  proc: ChildProcess
  port: number
  base: string
  /** Everything the child wrote so far. */
  output: () => string
  /** SIGTERM, then resolves once it exited. */
  stop: () => Promise<void>
}

/** Starts `node args` and waits for `listening at http://127.0.0.1:PORT` or a line `PORT n`. */
export async function startChild(args: string[], env: Record<string, string>, dir: string): Promise<Child> {
  const logFile = join(dir, `log-${Date.now()}-${Math.random()}.txt`)
  const out = openSync(logFile, 'w')
  // NODE_OPTIONS cleared: a parent's loaders (tap's coverage) are only slow noise in a child.
  const proc = spawn(process.execPath, args, { cwd: root, env: { ...process.env, NODE_OPTIONS: '', PORT: '0', ...env }, stdio: ['pipe', out, out, 'ipc'] })
  const output = (): string => readFileSync(logFile, 'utf8')
  for (let i = 0; i < 800; i++) {
    const m = /(?:listening at http:\/\/127\.0\.0\.1:|^PORT )(\d+)/m.exec(output())
    if (m) {
      const exited = new Promise<void>((r) => (proc.exitCode !== null ? r() : proc.on('exit', () => r())))
      const port = Number(m[1])
      return { proc, port, base: `http://127.0.0.1:${port}`, output, stop: () => (proc.kill('SIGTERM'), exited) }
    }
    if (proc.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 25))
  }
  proc.kill('SIGKILL')
  throw new Error(`child did not start: ${output().slice(0, 2000)}`)
}

/**
 * The lab server (src/server.ts through tsx, or another `entry` that starts it) with limits
 * lifted so that only speed is measured, and bench/probe.ts preloaded so that `probe` can read
 * its event-loop delay and memory.
 */
export function startLab(dir: string, env: Record<string, string>, entry = 'src/server.ts'): Promise<Child> {
  return startChild(['--expose-gc', '--import', 'tsx', '--import', './bench/probe.ts', entry], { KMAPLAB_RATE_MAX: '1000000000', KMAPLAB_MAX_MACHINES: '100000', ...env }, dir)
}

/** Asks a child started with bench/probe.ts for its figures; `gc` collects garbage first. */
export function probe(child: Child, gc = false): Promise<ProbeReply> {
  return new Promise((resolve) => {
    child.proc.once('message', (m) => resolve(m as ProbeReply))
    child.proc.send({ probe: true, gc })
  })
}

/** Resident set size of a process, in MiB. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m![1]) / 1024
}

export async function post(base: string, path: string, body: unknown): Promise<any> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return res.json()
}
