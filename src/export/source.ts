/**
 * What every trace encoder reads: the contract's events in seq order, from an array, a
 * generator or a database cursor. `for await` takes both kinds, so an encoder never needs
 * the whole trace at once.
 */
import type { SimEvent } from '../sim/index.js'

export type EventSource = AsyncIterable<SimEvent> | Iterable<SimEvent>

