// The stored trace as a file: JSONL, Perfetto or ftrace, streamed from SQLite. Events are
// read a page at a time and encoded as the socket drains, so a trace of millions of events
// never sits in memory whole, and a slow client slows the reads instead of filling a buffer.
import { Readable } from 'node:stream'
import { CONTENT_TYPES, exportTrace, type TraceFormat } from '../../export/index.js'
import type { MachineService } from '../../service/machines.js'
import type { SimEvent } from '../../sim/index.js'
import type { Handlers, MachineParams, RouteContext } from './types.js'

/** Events per store query: large enough to amortise the query, small enough to stay bounded. */
export const PAGE_SIZE = 1000

const EXTENSIONS: Record<TraceFormat, string> = {
  jsonl: 'jsonl',
  perfetto: 'perfetto.json',
  ftrace: 'ftrace.txt',
}

/**
 * The machine's events up to `lastSeq`, in seq order, one store page at a time. Stopping at
 * the seq the export started with gives a consistent file even while ops keep arriving.
 * Each page re-checks access, so a machine deleted mid-export ends the stream with an error.
 */
export async function* storedEvents(service: MachineService, principal: string, id: string, lastSeq: number): AsyncGenerator<SimEvent> {
  let after = 0
  while (after < lastSeq) {
    const page = await service.events(principal, id, { after, limit: PAGE_SIZE })
    for (const text of page) {
      const e = JSON.parse(text) as SimEvent
      if (e.seq > lastSeq) return
      yield e
      after = e.seq
    }
    if (page.length < PAGE_SIZE) return
  }
}

export function exportHandlers({ service }: RouteContext): Handlers {
  return {
    exportTrace: async (req, reply) => {
      const { id } = req.params as MachineParams
      const { format } = req.query as { format: TraceFormat }
      // Resolve the machine first: a 404 must be an ordinary error reply, not a broken stream.
      const machine = service.get(req.principal, id)
      const events = storedEvents(service, req.principal, id, machine.seq)
      const body = Readable.from(exportTrace(format, events, { machinePid: 1, machineName: id }), { objectMode: false })
      return reply
        .type(CONTENT_TYPES[format])
        .header('content-disposition', `attachment; filename="${id}.${EXTENSIONS[format]}"`)
        .send(body)
    },
  }
}
