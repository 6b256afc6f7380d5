// Rebuilding a machine from its op log. Determinism makes this exact: the same config and
// the same ops give the same events and state, so any difference from what was stored means
// the log, the model or the database has changed under us.
import type { Checkpoint, OpRow, Snapshot } from '../store/repo.js'
import { applyOp, isRefusal, newMachine, restoreMachine, stateHash, type Machine, type SimEvent } from './model.js'

export class ReplayMismatch extends Error {
  override name = 'ReplayMismatch'
}

export interface Replayed {
  machine: Machine
  opCount: number
  seq: number
}

/** A machine as it was after op `opN` (seq `seq`), to replay the later ops on. */
export interface Start {
  machine: Machine
  opN: number
  seq: number
}

export interface ReplayOptions {
  /** Start from this machine (see fromCheckpoint) instead of a new one: `ops` are the later ones. */
  from?: Start
  /** Hashes to verify after the named ops. */
  checkpoints?: readonly Checkpoint[]
  /** Sees every op with its events as it is replayed (a branch copies them). */
  onOp?: (row: OpRow, events: SimEvent[]) => void
}

export function replay(config: unknown, ops: Iterable<OpRow>, opts: ReplayOptions = {}): Replayed {
  const machine = opts.from?.machine ?? newMachine(config)
  const checkpoints = opts.checkpoints ?? []
  let next = 0
  let opCount = opts.from?.opN ?? 0
  let seq = opts.from?.seq ?? 0
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

/**
 * A stored snapshot's machine, which must hash like the state it was taken from. Restore it
 * before opening the op log's iterator: a throw here must not leave a query open.
 */
export function fromCheckpoint(s: Snapshot): Start {
  let machine: Machine
  try {
    machine = restoreMachine(s.snapshot)
  } catch (err) {
    throw new ReplayMismatch(`the snapshot after op ${s.opN} cannot be read: ${(err as Error).message}`)
  }
  if (stateHash(machine) !== s.hash) throw new ReplayMismatch(`the snapshot after op ${s.opN} does not match its checkpoint hash`)
  return { machine, opN: s.opN, seq: s.seq }
}
