/** JSON Lines: one contract event per line, exactly as the model emitted it. */
import type { EventSource } from './source.js'

export async function* encodeJsonl(events: EventSource): AsyncGenerator<string, void, undefined> {
  for await (const e of events) yield JSON.stringify(e) + '\n'
}
