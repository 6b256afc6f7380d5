/**
 * The library entry (contract section 1): a Machine applies one op at a time. Every refusal
 * is decided before anything changes, so a refused op leaves the machine exactly as it was;
 * a BUG, by contrast, is kernel behaviour: it is traced and halts the machine.
 */
import { parseConfig, type EffectiveConfig } from './config.js'
import { OpError } from './errors.js'
import type { Result } from './handlers.js'
import { Kernel, KernelBug, type SimEvent } from './kernel.js'
import { lookupOp, parseOp } from './ops.js'
import { OPS } from './optable.js'
import { callingCtx } from './refusals.js'
import { settle } from './sched.js'
import { buildState, type State } from './state.js'

export interface ApplyResult {
  result: Result
  events: SimEvent[]
}

export class Machine {
  readonly config: EffectiveConfig
  private readonly k: Kernel

  constructor(input: unknown) {
    const { layout, effective } = parseConfig(input)
    this.config = effective
    this.k = new Kernel(layout)
  }

  apply(op: unknown): ApplyResult {
    const k = this.k
    if (k.status === 'halted') throw new OpError('halted', `the machine is halted: ${k.haltReason}`)
    const entry = lookupOp(OPS, op)
    const p = parseOp(k.layout, entry.syntax, op as Record<string, unknown>)
    const ctx = callingCtx(k, entry.syntax.where, p)
    const target = entry.refuse === null ? null : entry.refuse(k, p)
    k.opStart()
    k.watch(ctx)
    let result: Result
    try {
      result = entry.run(k, ctx, p, target)
      k.flushCounters()
      k.watched = null
      settle(k)
    } catch (e) {
      if (!(e instanceof KernelBug)) throw e
      k.watched = null
      k.status = 'halted'
      k.haltReason = e.text
      k.emit('halt', ctx?.cpu.id ?? null, null, { reason: e.text })
      result = { bug: e.id }
    }
    return { result, events: k.out }
  }

  state(): State {
    return buildState(this.k)
  }
}

export function createMachine(config: unknown): Machine {
  return new Machine(config)
}
