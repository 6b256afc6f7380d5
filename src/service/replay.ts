// Rebuilding a machine from its op log. Determinism makes this exact: the same config and
// the same ops give the same events and state, so any difference from what was stored means
// the log, the model or the database has changed under us.
import type { Checkpoint, OpRow } from '../store/repo.js'
import { applyOp, isRefusal, newMachine, stateHash, type Machine, type SimEvent } from './model.js'

export class ReplayMismatch extends Error {
  override name = 'ReplayMismatch'
}

export interface Replayed {
  machine: Machine
  opCount: number
  seq: number
}

export interface ReplayOptions {
  /** Hashes to verify after the named ops. */
  checkpoints?: readonly Checkpoint[]
  /** Sees every op with its events as it is replayed (a branch copies them). */
  onOp?: (row: OpRow, events: SimEvent[]) => void
}

export function replay(config: unknown, ops: Iterable<OpRow>, opts: ReplayOptions = {}): Replayed {
  const machine = newMachine(config)
  const checkpoints = opts.checkpoints ?? []
  let next = 0
  let opCount = 0
  let seq = 0
  for (const row of ops) {
    const out = applyOp(machine, JSON.parse(row.op), row.n - 1)
    if (isRefusal(out)) throw new ReplayMismatch(`op ${row.n} was refused on replay: ${out.code}: ${out.message}`)
    opCount = row.n
    seq = out.events.at(-1)?.seq ?? seq
    if (seq !== row.seqEnd) throw new ReplayMismatch(`op ${row.n} ended at seq ${seq}, the log says ${row.seqEnd}`)
    opts.onOp?.(row, out.events)
    while (next < checkpoints.length && checkpoints[next]!.opN <= row.n) {
      const cp = checkpoints[next++]!
      if (cp.opN === row.n && stateHash(machine) !== cp.hash) {
        throw new ReplayMismatch(`state after op ${row.n} (seq ${seq}) does not match its checkpoint hash`)
      }
    }
  }
  return { machine, opCount, seq }
}
