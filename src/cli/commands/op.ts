/** `kmaplab op`: one op, or a batch from a file or stdin, applied to a machine. */
import { intOption, type Command, type Context } from '../args.js'
import { ApiError } from '../client.js'
import { CliError, EXIT } from '../errors.js'
import { eventLine } from '../event-line.js'
import { parseJson, readText } from '../input.js'
import { emit } from '../output.js'
import { machinePath } from './machine.js'
import type { SimEvent } from '../../sim/index.js'

interface OpReply {
  seq: number
  result: Record<string, unknown>
  events: SimEvent[]
}

interface BatchReply {
  seq: number
  results: { result: Record<string, unknown>; events: SimEvent[] }[]
  refused: { index: number; code: string; message: string; field?: string } | null
  skipped: number
}

/** A batch as a JSON array, `{"ops": [...]}`, or JSON Lines (one op per line). */
export function parseBatch(text: string, source: string): Record<string, unknown>[] {
  let ops: unknown
  try {
    const doc: unknown = JSON.parse(text)
    ops = Array.isArray(doc) ? doc : (doc as { ops?: unknown } | null)?.ops ?? [doc]
  } catch {
    // Not one JSON document: JSON Lines, where blank lines and # comments are allowed.
    ops = text
      .split('\n')
      .map((l, i) => ({ l: l.trim(), i }))
      .filter(({ l }) => l !== '' && !l.startsWith('#'))
      .map(({ l, i }) => parseJson(l, `${source} line ${i + 1}`))
  }
  if (!Array.isArray(ops) || ops.length === 0 || !ops.every((o) => typeof o === 'object' && o !== null && !Array.isArray(o)))
    throw new CliError(`${source}: expected ops as a JSON array, {"ops": [...]}, or one JSON object per line`)
  return ops as Record<string, unknown>[]
}

async function single(ctx: Context, id: string, op: Record<string, unknown>, headers: Record<string, string>): Promise<number> {
  let reply: OpReply
  try {
    reply = await ctx.client.post<OpReply>(machinePath(id, '/ops'), op, headers)
  } catch (err) {
    if (!(err instanceof ApiError) || (err.status !== 400 && err.status !== 409)) throw err
    const refused = { code: err.code, message: err.detail, ...(err.field ? { field: err.field } : {}) }
    emit(ctx, { refused }, () => `refused (${err.code}): ${err.detail}\n`)
    return EXIT.failed
  }
  emit(ctx, reply, () => [`seq ${reply.seq}: ${JSON.stringify(reply.result)}`, ...reply.events.map(eventLine)].join('\n') + '\n')
  return EXIT.ok
}

/**
 * Sends the batch in chunks the server accepts, stopping at the first refusal as one
 * batch would; the merged reply is what one batch reply would have said.
 */
async function batch(ctx: Context, id: string, ops: Record<string, unknown>[], chunk: number, headers: Record<string, string>): Promise<number> {
  const merged: BatchReply = { seq: 0, results: [], refused: null, skipped: 0 }
  for (let start = 0; start < ops.length; start += chunk) {
    const key = headers['idempotency-key']
    const part = await ctx.client.post<BatchReply>(machinePath(id, '/ops'), { ops: ops.slice(start, start + chunk) }, key ? { 'idempotency-key': `${key}:${start}` } : {})
    merged.seq = part.seq
    merged.results.push(...part.results)
    if (part.refused) {
      merged.refused = { ...part.refused, index: part.refused.index + start }
      merged.skipped = ops.length - merged.results.length - 1
      break
    }
  }
  emit(ctx, merged, () => {
    const diags = merged.results.flatMap((r) => r.events.filter((e) => e.type === 'diagnostic'))
    const lines = [`applied ${merged.results.length} of ${ops.length} ops, seq ${merged.seq}`, ...diags.map(eventLine)]
    const r = merged.refused
    if (r) lines.push(`refused op ${r.index} (${r.code}): ${r.message}; ${merged.skipped} ops after it not run`)
    return lines.join('\n') + '\n'
  })
  return merged.refused ? EXIT.failed : EXIT.ok
}

export const opCommand: Command = {
  name: 'op',
  usage: "MACHINE [OP_JSON] [-f FILE|-] [--chunk N] [--idempotency-key KEY]",
  summary: 'Apply one op, or a batch of ops, to a machine.',
  help: `OP_JSON is one contract op (section 4), e.g. '{"op":"kmap_local_page","pid":1,"page":"0x40000"}';
it prints the result and the op's events. A batch comes from -f FILE, -f - or piped stdin:
a JSON array of ops, {"ops": [...]}, or one op per line; it runs in order and stops at the
first refused op (the ops before it stay applied).
  -f, --file FILE          the batch (- for stdin)
  --chunk N                ops per request for a batch (default 1000; the server's limit is
                           KMAPLAB_MAX_BATCH)
  --idempotency-key KEY    a retry with the same key is not applied twice
Exit status: 0 applied, 1 an op was refused, 2 usage, 3 no server or another error.`,
  options: { file: { type: 'string', short: 'f' }, chunk: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  async run(ctx: Context) {
    const [id, inline, ...rest] = ctx.positionals
    if (id === undefined) ctx.usage('name the machine, then the op (see `kmaplab machine list`)')
    if (rest.length > 0) ctx.usage(`unexpected arguments: ${rest.join(' ')} (quote the op JSON as one argument)`)
    const file = ctx.values.file as string | undefined
    if (inline !== undefined && file !== undefined) ctx.usage('give the op inline or --file, not both')
    const key = ctx.values['idempotency-key'] as string | undefined
    const headers: Record<string, string> = key ? { 'idempotency-key': key } : {}
    const chunk = intOption(ctx, 'chunk') ?? 1000
    if (chunk < 1) ctx.usage('--chunk must be at least 1')
    if (inline !== undefined) {
      const op = parseJson(inline, 'the op')
      if (typeof op !== 'object' || op === null) ctx.usage('the op must be a JSON object')
      const ops = (op as { ops?: unknown }).ops
      if (Array.isArray(ops)) return batch(ctx, id, parseBatch(inline, 'the batch'), chunk, headers)
      return single(ctx, id, op as Record<string, unknown>, headers)
    }
    if (file === undefined && process.stdin.isTTY) ctx.usage('give an op as JSON, or a batch with --file FILE or on stdin')
    const source = file ?? '-'
    return batch(ctx, id, parseBatch(await readText(source), source === '-' ? 'stdin' : source), chunk, headers)
  },
}
