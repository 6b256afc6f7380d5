/**
 * Trace export: the three formats behind one call, for the HTTP trace route and the CLI.
 * Every format streams: events are read one at a time and text leaves in ~64 KiB chunks.
 */
import { batch } from './batch.js'
import { encodeFtrace } from './ftrace.js'
import { encodeJsonl } from './jsonl.js'
import { encodePerfetto } from './perfetto.js'
import type { EventSource } from './source.js'

export { encodeFtrace } from './ftrace.js'
export { encodeJsonl } from './jsonl.js'
export { encodePerfetto, type PerfettoOptions } from './perfetto.js'
export type { EventSource } from './source.js'

export const TRACE_FORMATS = ['jsonl', 'perfetto', 'ftrace'] as const
export type TraceFormat = (typeof TRACE_FORMATS)[number]

export const CONTENT_TYPES: Record<TraceFormat, string> = {
  jsonl: 'application/x-ndjson',
  perfetto: 'application/json',
  ftrace: 'text/plain; charset=utf-8',
}

export interface ExportOptions {
  /** Perfetto's process id for the machine (e.g. its number in a listing). */
  machinePid: number
  /** Perfetto's process name. */
  machineName?: string
}

/** The chosen format's text, in chunks of about 64 KiB. */
export function exportTrace(format: TraceFormat, events: EventSource, options: ExportOptions): AsyncGenerator<string, void, undefined> {
  switch (format) {
    case 'jsonl':
      return batch(encodeJsonl(events))
    case 'perfetto':
      return batch(encodePerfetto(events, { pid: options.machinePid, name: options.machineName }))
    case 'ftrace':
      return batch(encodeFtrace(events))
  }
}
