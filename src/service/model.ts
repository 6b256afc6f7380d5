// The slice of the kernel model (src/sim) the service uses, and the one place that turns the
// model's exceptions into the service's vocabulary.
import { createHash } from 'node:crypto'
import { createMachine, InvalidOpError, OpError, ValidationError } from '../sim/index.js'
import { ServiceError } from './errors.js'

export type Machine = ReturnType<typeof createMachine>

export interface SimEvent {
  seq: number
  type: string
  cpu?: number | null
  pid?: number | null
}

const jsonOf = new WeakMap<SimEvent, string>()

/**
 * An event's JSON text, made once for every stream that sends it: with many subscribers,
 * serialising each event again would cost more than the model did. The service makes it here
 * for the store when the machine is watched, and plainly otherwise.
 */
export function eventJson(e: SimEvent): string {
  let s = jsonOf.get(e)
  if (s === undefined) jsonOf.set(e, (s = JSON.stringify(e)))
  return s
}

export interface Applied {
  result: unknown
  events: SimEvent[]
}

/** Why an op of a batch was not applied. */
export interface Refusal {
  index: number
  kind: 'invalid' | 'refused'
  code: string
  message: string
  field?: string
}

export function newMachine(config: unknown): Machine {
  try {
    return createMachine(config as Parameters<typeof createMachine>[0])
  } catch (err) {
    if (err instanceof ValidationError) {
      throw new ServiceError('invalid', 'invalid_config', err.message, err.field)
    }
    throw err
  }
}

/**
 * Applies one op. A refusal comes back as a value (the machine is unchanged); any other
 * exception is a bug in the model and propagates.
 */
export function applyOp(machine: Machine, op: unknown, index: number): Applied | Refusal {
  try {
    const out = machine.apply(op as Parameters<Machine['apply']>[0]) as { result: unknown; events: SimEvent[] }
    return { result: out.result, events: out.events }
  } catch (err) {
    if (err instanceof OpError) return { index, kind: 'refused', code: err.code, message: err.message }
    if (err instanceof InvalidOpError) {
      return { index, kind: 'invalid', code: 'invalid_op', message: err.message, field: err.field }
    }
    throw err
  }
}

export function isRefusal(x: Applied | Refusal): x is Refusal {
  return 'kind' in x
}

/** The hash a checkpoint stores: any difference in the state document changes it. */
export function stateHash(machine: Machine): string {
  return createHash('sha256').update(JSON.stringify(machine.state())).digest('hex')
}

/** The whole model as text and back (src/sim/snapshot.ts): what a checkpoint stores. */
export { restoreMachine, snapshotMachine } from '../sim/index.js'
