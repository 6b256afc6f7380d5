/**
 * Where a scenario runs. The runner needs only these two calls, so the same scenario runs
 * on an in-process Machine (local.ts) or on a lab server over HTTP (the CLI's executor).
 */
import type { SimEvent, State } from '../sim/index.js'

export interface Applied {
  result: Record<string, unknown>
  events: SimEvent[]
}

export interface Executor {
  /** Applies one op; a refusal (contract section 5) rejects with an OpRefusal. */
  apply(op: Record<string, unknown>): Promise<Applied>
  state(): Promise<State>
}

/** Makes a fresh machine from a scenario's config and returns its executor. */
export type ExecutorFactory = (machine: Record<string, unknown>) => Promise<Executor>

/**
 * An op the machine refused: `code` is the OpError code (HTTP 409), or "invalid_op" for a
 * malformed op (HTTP 400, the message names the field). Anything else an executor throws
 * (a dead server, a bad config) is not a scenario outcome and stops the run.
 */
export class OpRefusal extends Error {
  override name = 'OpRefusal'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}
