/**
 * `kmaplab tail`: a machine's events as they happen, over the stream WebSocket
 * (docs/stream.md), one readable line each. It subscribes with the user's filters, follows
 * the stored backlog into live events, and when the server cuts it for falling behind
 * (`lagged`) it reconnects from where it was, so a slow terminal loses nothing.
 */
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { intOption, listOption, type Command, type Context } from '../args.js'
import { ApiError } from '../client.js'
import { CliError, EXIT } from '../errors.js'
import { eventLine } from '../event-line.js'
import { machinePath } from './machine.js'
import type { SimEvent } from '../../sim/index.js'

type ServerMessage =
  | { type: 'hello'; seq: number }
  | { type: 'subscribed' }
  | { type: 'live'; seq: number }
  | { type: 'events'; events: SimEvent[] }
  | { type: 'lagged'; resumeAfter: number }
  | { type: 'halted'; seq: number; reason: string | null }
  | { type: 'deleted' }
  | { type: 'error'; error: { code: string; message: string; field?: string } }

interface Filters {
  types?: string[]
  cpus?: number[]
  pids?: number[]
}

/** How one connection ended: done, or resume after this seq on a new one. */
type Ending = { done: number } | { resumeAfter: number }

function numbers(ctx: Context, name: string, max: number): number[] | undefined {
  const list = listOption(ctx, name)
  if (list === undefined) return undefined
  return list.map((v) => {
    const n = Number(v)
    if (!/^\d+$/.test(v) || n > max) ctx.usage(`--${name} ${v}: expected integers from 0 to ${max}, comma-separated`)
    return n
  })
}

function filtersOf(ctx: Context): Filters {
  const types = listOption(ctx, 'types')
  for (const t of types ?? []) if (!/^[a-z_]{1,32}$/.test(t)) ctx.usage(`--types ${t}: an event type, e.g. kmap,kunmap,sched_switch,diagnostic`)
  const cpus = numbers(ctx, 'cpus', 63)
  const pids = numbers(ctx, 'pids', 2147483647)
  return { ...(types ? { types } : {}), ...(cpus ? { cpus } : {}), ...(pids ? { pids } : {}) }
}

function streamUrl(ctx: Context, id: string): string {
  const url = new URL(machinePath(id, '/stream'), ctx.client.conn.url)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  return url.href
}

/** The HTTP refusal of the upgrade (401, 404, ...), in the API's words. */
function refusal(res: IncomingMessage): Promise<CliError> {
  return new Promise((resolve) => {
    let body = ''
    res.on('data', (d: Buffer) => (body += d.toString()))
    res.on('end', () => {
      let error: { code?: string; message?: string; field?: string } = {}
      try {
        error = (JSON.parse(body) as { error?: typeof error }).error ?? {}
      } catch {
        // Not the API's error shape: the status says enough.
      }
      const hint = res.statusCode === 401 ? 'pass --token or set KMAPLAB_TOKEN' : undefined
      resolve(new ApiError(res.statusCode ?? 0, error.code ?? 'http_error', error.message ?? res.statusMessage ?? 'refused', error.field, hint))
    })
  })
}

/**
 * One connection: subscribe after `after`, print events, and report how it ended. `left`
 * counts down the events still wanted with --count (Infinity without).
 */
function follow(ctx: Context, id: string, after: number | undefined, filters: Filters, left: { n: number; announced: boolean }): Promise<Ending> {
  const token = ctx.client.conn.token
  const ws = new WebSocket(streamUrl(ctx, id), token ? { headers: { authorization: `Bearer ${token}` } } : {})
  let position = after ?? 0
  return new Promise<Ending>((resolve, reject) => {
    const stop = (): void => {
      ws.close(1000)
      resolve({ done: EXIT.ok })
    }
    process.once('SIGINT', stop)
    ws.on('unexpected-response', (_req, res) => void refusal(res).then(reject))
    ws.on('error', (err) => reject(new CliError(`cannot stream from ${ctx.client.conn.url} (${(err as NodeJS.ErrnoException).code ?? err.message}): is \`kmaplab serve\` running there?`)))
    ws.on('close', (code) => {
      process.off('SIGINT', stop)
      // 1001: the server is going away; anything else unannounced is a dropped connection.
      if (code === 1001) reject(new CliError(`the server shut down; resume with --after ${position}`))
      else resolve({ done: EXIT.ok })
    })
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as ServerMessage
      switch (msg.type) {
        case 'hello':
          if (after === undefined) position = msg.seq
          ws.send(JSON.stringify({ type: 'subscribe', after: position, ...filters }))
          return
        case 'events':
          for (const e of msg.events) {
            if (left.n <= 0) break
            const line = ctx.json ? JSON.stringify(e) : eventLine(e)
            // Backpressure: stop reading the socket while stdout is full.
            if (!process.stdout.write(line + '\n')) {
              ws.pause()
              process.stdout.once('drain', () => ws.resume())
            }
            position = e.seq
            left.n--
          }
          if (left.n <= 0) stop()
          return
        case 'live':
          // On stderr, so stdout stays events only; it also tells a script the tail is attached.
          if (!left.announced) process.stderr.write(`kmaplab tail: ${id} live after seq ${position} (Ctrl-C to stop)\n`)
          left.announced = true
          return
        case 'lagged':
          process.stderr.write(`kmaplab tail: fell behind; resuming after seq ${msg.resumeAfter}\n`)
          ws.removeAllListeners('close')
          ws.close()
          resolve({ resumeAfter: msg.resumeAfter })
          return
        case 'halted':
          process.stderr.write(`kmaplab tail: machine halted at seq ${msg.seq}${msg.reason ? `: ${msg.reason}` : ''}\n`)
          return
        case 'deleted':
          process.stderr.write(`kmaplab tail: machine ${id} was deleted\n`)
          return
        case 'error':
          reject(new CliError(`the server refused: ${msg.error.message}${msg.error.field ? ` (${msg.error.field})` : ''}`))
          ws.close()
          return
        default:
          return
      }
    })
  })
}

export const tailCommand: Command = {
  name: 'tail',
  usage: 'MACHINE [--after SEQ] [--types T,...] [--cpus N,...] [--pids N,...] [-n COUNT]',
  summary: "Follow a machine's events live, one line each.",
  help: `Prints events as they are committed, until Ctrl-C, the machine halts, or COUNT events.
  --after SEQ         start after this seq (0: the whole stored trace first); default: now
  --types T,...       only these event types (kmap, kunmap, sched_switch, diagnostic, ...)
  --cpus N,...        only events on these CPUs
  --pids N,...        only events of these tasks
  -n, --count COUNT   stop after COUNT events
A line: [CPU] simulated-seconds #seq task type fields; with --json, one event per line (JSONL).
Filters may be repeated or comma-separated.`,
  options: {
    after: { type: 'string' },
    types: { type: 'string', multiple: true },
    cpus: { type: 'string', multiple: true },
    pids: { type: 'string', multiple: true },
    count: { type: 'string', short: 'n' },
  },
  async run(ctx: Context) {
    const [id, ...rest] = ctx.positionals
    if (id === undefined) ctx.usage('name the machine (see `kmaplab machine list`)')
    if (rest.length > 0) ctx.usage(`unexpected arguments: ${rest.join(' ')}`)
    const filters = filtersOf(ctx)
    // Shared by the connections of one tail: events still wanted, and whether "live" was said.
    const left = { n: intOption(ctx, 'count') ?? Infinity, announced: false }
    let after = intOption(ctx, 'after')
    for (;;) {
      const ending = await follow(ctx, id, after, filters, left)
      if ('done' in ending) return ending.done
      after = ending.resumeAfter
    }
  },
}
