// Turning events into `events` messages cheaply when many sockets watch one machine: the hub
// hands every subscriber the same event objects, each serialised once (by the service, for
// the store), and a batch that several unfiltered subscribers send whole is encoded once.
import { eventJson, type SimEvent } from '../../service/model.js'

/** `events` given as their stored JSON text (the backlog comes from SQLite that way). */
export function eventsMessage(jsonEvents: readonly string[]): string {
  return `{"type":"events","events":[${jsonEvents.join(',')}]}`
}

// The last unfiltered batch encoded. The subscribers of one publish each hold their own array
// of the very same event objects; a batch without holes in its seqs is fixed by its first and
// last objects, so those identify it.
let last: { first: SimEvent; end: SimEvent; data: Buffer } | undefined

/** The `events` message for live events, as a Buffer that every socket can send unchanged. */
export function liveEventsMessage(events: readonly SimEvent[]): Buffer {
  const first = events[0]!
  const end = events[events.length - 1]!
  const whole = end.seq - first.seq + 1 === events.length
  if (whole && last?.first === first && last.end === end) return last.data
  const data = Buffer.from(eventsMessage(events.map(eventJson)))
  if (whole) last = { first, end, data }
  return data
}
