/**
 * `kmaplab export`: a machine's trace to a file, streamed from the server to the disk
 * without holding it in memory. The file appears only once complete (written beside it
 * and renamed), so an interrupted export never leaves a truncated trace that looks whole.
 */
import { createWriteStream } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { Readable, Transform, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebStream } from 'node:stream/web'
import type { Command, Context } from '../args.js'
import { CliError, EXIT } from '../errors.js'
import { Progress } from '../progress.js'
import { emit } from '../output.js'
import { machinePath, type MachineInfo } from './machine.js'

const FORMATS = ['jsonl', 'perfetto', 'ftrace'] as const
/** Formats with one line per event, whose newlines count events for the progress bar. */
const LINE_PER_EVENT = new Set(['jsonl', 'ftrace'])

/** Counts bytes and newlines as they pass, for the progress bar and the summary. */
function counter(onChunk: (bytes: number, lines: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      let lines = 0
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
      onChunk(chunk.length, lines)
      done(null, chunk)
    },
  })
}

export const exportCommand: Command = {
  name: 'export',
  usage: 'MACHINE --format jsonl|perfetto|ftrace [-o FILE]',
  summary: "Write a machine's trace to a file (or stdout), with a progress bar on a terminal.",
  help: `  --format F     jsonl (one contract event per line), perfetto (open it in ui.perfetto.dev or
                 chrome://tracing), ftrace (trace-cmd report text)
  -o, --output   the file (default stdout; - is stdout too)
The trace holds every event committed when the export starts.`,
  options: { format: { type: 'string' }, output: { type: 'string', short: 'o' } },
  async run(ctx: Context) {
    const [id, ...rest] = ctx.positionals
    if (id === undefined) ctx.usage('name the machine (see `kmaplab machine list`)')
    if (rest.length > 0) ctx.usage(`unexpected arguments: ${rest.join(' ')}`)
    const format = ctx.values.format as string | undefined
    if (format === undefined || !(FORMATS as readonly string[]).includes(format)) ctx.usage(`--format is required: one of ${FORMATS.join(', ')}`)
    const output = ctx.values.output as string | undefined
    const toFile = output !== undefined && output !== '-'

    const machine = await ctx.client.get<MachineInfo>(machinePath(id))
    const res = await ctx.client.send('GET', machinePath(id, `/trace?format=${format}`))
    if (!res.body) throw new CliError('the server sent an empty reply to the trace request')
    const progress = new Progress(`${id} ${format}`, LINE_PER_EVENT.has(format) ? machine.seq : null)
    let bytes = 0
    let lines = 0
    const count = counter((b, l) => {
      bytes += b
      lines += l
      progress.update(bytes, LINE_PER_EVENT.has(format) ? lines : null)
    })
    const part = `${output}.part`
    const sink: Writable = toFile ? createWriteStream(part) : process.stdout
    try {
      await pipeline(Readable.fromWeb(res.body as WebStream<Uint8Array>), count, sink, { end: toFile })
      if (toFile) await rename(part, output)
    } catch (err) {
      if (toFile) await rm(part, { force: true })
      throw new CliError(`the export stopped after ${bytes} bytes: ${(err as Error).message}`)
    }
    progress.finish(bytes, LINE_PER_EVENT.has(format) ? lines : null)
    const summary = { machine: id, format, file: toFile ? output : null, bytes, events: machine.seq }
    // With the trace on stdout, the summary goes to stderr so it cannot corrupt the trace.
    if (toFile) emit(ctx, summary, () => `wrote ${output}: ${bytes} bytes, ${machine.seq} events (${format})\n`)
    else if (ctx.json) process.stderr.write(JSON.stringify(summary) + '\n')
    return EXIT.ok
  },
}
