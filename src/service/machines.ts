// Live machines: each request becomes ops on an in-memory machine, the ops and their events
// are committed (group commit), the reply is built, and only then are the events published.
// Machines are restored lazily from the op log on first use, so start-up does not depend on
// how many are stored.
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { Checkpoint, EventQuery, EventRow, HistoryCopy, MachineRow, Repo, WriteSet } from '../store/repo.js'
import { StorageError, type Writer } from '../store/writer.js'
import { notFound, ServiceError } from './errors.js'
import type { Hub, Listener, Unsubscribe } from './hub.js'
import { applyOp, eventJson, isRefusal, newMachine, snapshotMachine, stateHash, type Applied, type Machine, type Refusal, type SimEvent } from './model.js'
import { fromCheckpoint, replay, ReplayMismatch, type Replayed } from './replay.js'
import { IdempotencyGuard, type IdempotencyRequest } from './idempotency.js'

export interface Limits {
  machinesPerOwner: number
  /** Machines kept in memory; the least recently used beyond this are dropped (and restored on demand). */
  liveMachines: number
  /**
   * A checkpoint (the state's hash and a snapshot of the model) is stored once this many ops
   * have been applied since the last one; a restore starts from the latest snapshot.
   */
  checkpointEvery: number
}

export interface MachineInfo {
  id: string
  config: unknown
  seq: number
  opCount: number
  status: string
  createdAt: string
  parent: { id: string; seq: number } | null
  diverged?: string
}

export interface OpsOutcome {
  seq: number
  results: Applied[]
  refused: Refusal | null
  skipped: number
}

/**
 * Turns an outcome into its reply text; given to `apply`, it runs during the commit.
 * `eventTexts` are the JSON texts of the outcome's events in order, as the store got them.
 */
export type Render = (outcome: OpsOutcome, eventTexts: readonly string[]) => string

/** An outcome, with its reply text when `apply` was given a Render and ran the ops itself. */
export type Rendered = OpsOutcome & { replayed?: boolean; rendered?: string }

interface Session {
  id: string
  owner: string
  machine: Machine
  opCount: number
  seq: number
  status: string
  lastCheckpointOp: number
  /** Settles when this machine's latest write set is committed (or failed). */
  committed: Promise<void>
  /** Write sets queued and not yet settled: such a session must stay in memory. */
  pending: number
}

/**
 * Ops per staged part of a large batch: the writer thread writes each part while the model
 * runs the next, so a batch of 1,000 costs about the longer of the two instead of their sum.
 */
export const STAGE_OPS = 128
/** The first part is smaller: until it is handed over, the writer thread has nothing to do. */
const FIRST_STAGE_OPS = 32

export function newMachineId(): string {
  return 'm_' + randomBytes(9).toString('base64url')
}

function info(row: MachineRow): MachineInfo {
  return {
    id: row.id,
    config: row.effective,
    seq: row.seq,
    opCount: row.opCount,
    status: row.status,
    createdAt: row.createdAt,
    parent: row.parentId === null ? null : { id: row.parentId, seq: row.parentSeq ?? 0 },
    ...(row.diverged ? { diverged: row.diverged } : {}),
  }
}

/**
 * A machine marked diverged is not served, nor branched: its stored trace may stop short of its
 * op log (start-up recovery skips it), and a branch copies that trace.
 */
function refuseDiverged(row: MachineRow): void {
  if (row.diverged) throw new ServiceError('conflict', 'machine_diverged', `machine ${row.id} failed its restore check and is not served: ${row.diverged}`)
}

function checkpoint(machine: Machine, opN: number, seq: number): Checkpoint {
  return { opN, seq, hash: stateHash(machine), snapshot: snapshotMachine(machine) }
}

function eventRow(e: SimEvent, body = JSON.stringify(e)): EventRow {
  return { seq: e.seq, type: e.type, cpu: e.cpu ?? null, pid: e.pid ?? null, body }
}

export class MachineService {
  private readonly live = new Map<string, Session>()
  /** Machines being deleted, with the deletion: they take no more ops, and no more branches. */
  private readonly deleting = new Map<string, Promise<void>>()
  /** Branches being committed, per parent: their commits copy the parent's rows. */
  private readonly branching = new Map<string, Set<Promise<unknown>>>()
  /** Creations not yet committed, per owner, so concurrent creates cannot overshoot the limit. */
  private readonly creating = new Map<string, number>()
  private readonly idempotency: IdempotencyGuard<OpsOutcome>
  readonly counters = { opsApplied: 0 }

  constructor(
    private readonly repo: Repo,
    private readonly writer: Writer,
    private readonly hub: Hub,
    private readonly limits: Limits,
    private readonly log: Logger,
  ) {
    this.idempotency = new IdempotencyGuard(repo)
  }

  get liveCount(): number {
    return this.live.size
  }

  async create(owner: string, config: unknown): Promise<MachineInfo> {
    this.reserveSlot(owner)
    try {
      const machine = newMachine(config)
      return await this.persistNew(owner, config, machine, null, { opCount: 0, seq: 0 })
    } finally {
      this.releaseSlot(owner)
    }
  }

  /**
   * A new machine with `parentId`'s config and its ops up to the last one ending at or before
   * `seq`. The model at the cut is rebuilt as a restore would be (latest snapshot, then the ops
   * after it, checked against the stored hashes); the history itself is copied by the store,
   * so that a long parent neither blocks the event loop with its replay nor crosses into
   * memory whole.
   */
  async branch(owner: string, parentId: string, seq: number): Promise<MachineInfo> {
    const parent = this.row(owner, parentId)
    if (this.deleting.has(parentId)) throw notFound(`machine ${parentId}`)
    refuseDiverged(parent)
    if (seq > parent.seq) throw new ServiceError('invalid', 'seq_out_of_range', `seq ${seq} is beyond the machine's seq ${parent.seq}`, 'seq')
    this.reserveSlot(owner)
    try {
      const cut = this.rebuild(parent, seq)
      const copy = cut.opCount > 0 ? { from: parentId, throughN: cut.opCount, throughSeq: cut.seq } : undefined
      const created = this.persistNew(owner, parent.config, cut.machine, { id: parentId, seq: cut.seq }, { copy, opCount: cut.opCount, seq: cut.seq })
      // Its commit reads the parent's rows: a delete of the parent waits for it (see delete).
      const branches = this.branching.get(parentId) ?? new Set<Promise<unknown>>()
      this.branching.set(parentId, branches.add(created))
      try {
        const branched = await created
        this.log.debug({ machine: branched.id, parent: parentId, ops: cut.opCount, replayed: cut.opCount - cut.fromOp }, 'machine branched')
        return branched
      } finally {
        branches.delete(created)
        if (branches.size === 0 && this.branching.get(parentId) === branches) this.branching.delete(parentId)
      }
    } finally {
      this.releaseSlot(owner)
    }
  }

  get(owner: string, id: string): MachineInfo {
    return info(this.row(owner, id))
  }

  list(owner: string, after: string, limit: number): { machines: MachineInfo[]; next: string | null } {
    const rows = this.repo.listMachines(owner, after, limit)
    return { machines: rows.map(info), next: rows.length === limit ? rows.at(-1)!.id : null }
  }

  /** Deletes the machine; a second delete while one runs gets that one's outcome. */
  async delete(owner: string, id: string): Promise<void> {
    this.row(owner, id)
    let deletion = this.deleting.get(id)
    if (!deletion) {
      deletion = this.deleteNow(id).finally(() => this.deleting.delete(id))
      this.deleting.set(id, deletion)
    }
    return deletion
  }

  private async deleteNow(id: string): Promise<void> {
    // From here the machine takes no new ops (session() refuses it) and no branches. Its
    // writes already under way, and branches copying it, land first, so that the delete is
    // the last word; the writer deletes it between transactions, off the event loop, and
    // drops any of its events still waiting to be stored.
    await Promise.allSettled(this.branching.get(id) ?? [])
    for (let s = this.live.get(id); s && s.pending > 0; s = this.live.get(id)) await s.committed.catch(() => {})
    try {
      await this.writer.remove(id)
    } catch (err) {
      throw this.storageFailure(err)
    }
    this.repo.forget(id)
    this.live.delete(id)
    this.hub.closeMachine(id)
  }

  /** The contract's state document: current, or rebuilt by replay as of `at`. */
  async state(owner: string, id: string, at?: number): Promise<unknown> {
    if (at === undefined) return (await this.session(owner, id)).machine.state()
    const row = this.row(owner, id)
    if (at > row.seq) throw new ServiceError('invalid', 'seq_out_of_range', `at=${at} is beyond the machine's seq ${row.seq}`, 'at')
    return this.rebuild(row, at).machine.state()
  }

  /** A page of the machine's stored trace, with every event of an acknowledged op in it. */
  async events(owner: string, id: string, q: EventQuery): Promise<string[]> {
    return (await this.trace(owner, id, q)).rows
  }

  /**
   * A page of the trace, read after the events of every acknowledged op are stored, with the
   * machine's row and the seq of its last stored event read in the same transaction. The row
   * may be ahead of the stored events (ops committed since), never behind them.
   */
  async trace(owner: string, id: string, q: EventQuery): Promise<{ rows: string[]; storedSeq: number; machine: MachineInfo }> {
    try {
      await this.writer.flushEvents()
    } catch (err) {
      throw this.storageFailure(err)
    }
    // The row comes with the page: access is checked on it, and a machine deleted while the
    // events were being stored is a 404 like any other.
    const { rows, storedSeq, machine } = this.guardStorage(() => this.repo.readTrace(id, q))
    if (!machine || machine.owner !== owner) throw notFound(`machine ${id}`)
    return { rows, storedSeq, machine: info(machine) }
  }

  /**
   * Every event of the machine committed from now on, in seq order, unfiltered: a stream
   * applies its own filter so that it still sees the `halt` that ends it, and can change
   * its filter without missing anything.
   */
  subscribe(owner: string, id: string, listener: Listener): Unsubscribe {
    this.row(owner, id)
    return this.hub.subscribe(id, {}, listener)
  }

  /**
   * Runs ops in order, stopping at the first refusal (the contract's batch rule), commits
   * what ran and then publishes it. With an idempotency key, a retry of the same request
   * gets the first reply instead of running again. (Not async itself: an async function
   * returning applyNow's promise would wrap it in another, settled turns of the microtask
   * queue later.)
   */
  apply(owner: string, id: string, ops: readonly unknown[], idem?: IdempotencyRequest, render?: Render): Promise<Rendered> {
    if (!idem) return this.applyNow(owner, id, ops, undefined, render)
    return this.idempotency.run(owner, id, idem, () => this.applyNow(owner, id, ops, idem, render))
  }

  private async applyNow(owner: string, id: string, ops: readonly unknown[], idem?: IdempotencyRequest, render?: Render): Promise<Rendered> {
    const s = await this.session(owner, id)
    const results: Applied[] = []
    const texts: string[] = []
    // Streams look an event's text up by the event (eventJson): it is cached for them only when
    // someone watches, as a WeakMap entry per event costs more than the JSON.stringify it saves.
    const watched = this.hub.watching(id)
    const part = (): WriteSet => ({ machineId: id, ops: [], events: [], head: { opCount: s.opCount, seq: s.seq, status: s.status } })
    let ws = part()
    let staged = false
    let refused: Refusal | null = null
    try {
      for (let i = 0; i < ops.length; i++) {
        const out = applyOp(s.machine, ops[i], i)
        if (isRefusal(out)) {
          refused = out
          break
        }
        results.push(out)
        s.opCount++
        s.seq = out.events.at(-1)?.seq ?? s.seq
        if (out.events.some((e) => e.type === 'halt')) s.status = 'halted'
        ws.ops.push({ n: s.opCount, op: JSON.stringify(ops[i]), seqEnd: s.seq })
        for (const e of out.events) {
          const body = watched ? eventJson(e) : JSON.stringify(e)
          ws.events.push(eventRow(e, body))
          texts.push(body)
        }
        if (ws.ops.length === (staged ? STAGE_OPS : FIRST_STAGE_OPS) && i + 1 < ops.length) {
          ws.head = { opCount: s.opCount, seq: s.seq, status: s.status }
          this.writer.stage(ws)
          staged = true
          ws = part()
        }
      }
    } catch (err) {
      // A bug in the model, mid-batch: nothing of the batch is kept, and the machine, now
      // ahead of its log (perhaps half-way through an op), is dropped from memory and comes
      // back from the log on its next use.
      if (staged) this.writer.discardStaged()
      this.live.delete(id)
      throw err
    }
    const outcome: Rendered = { seq: s.seq, results, refused, skipped: ops.length - results.length - (refused ? 1 : 0) }
    if (results.length === 0) return outcome
    ws.head = { opCount: s.opCount, seq: s.seq, status: s.status }
    if (s.opCount - s.lastCheckpointOp >= this.limits.checkpointEvery) {
      ws.checkpoint = checkpoint(s.machine, s.opCount, s.seq)
      s.lastCheckpointOp = s.opCount
    }
    if (idem) ws.idempotency = { owner, key: idem.key, requestHash: idem.hash, reply: JSON.stringify(outcome) }
    this.counters.opsApplied += results.length
    const done = this.commit(s, ws)
    // Rendered while the writer thread commits: a batch's reply is ~420 KB of JSON. Set on the
    // outcome rather than spread into a copy: `{ ...outcome, rendered }` takes V8's slow path
    // (about 0.9 us, more than the rest of this bookkeeping).
    if (render) outcome.rendered = render(outcome, texts)
    await done
    if (this.hub.watching(id)) this.hub.publish(id, results.flatMap((r) => r.events))
    return outcome
  }

  /** Commits a write set for a live machine; on failure the machine is dropped from memory,
   *  because it has run ahead of the store, and comes back from the log on its next use. */
  private async commit(s: Session, ws: WriteSet): Promise<void> {
    const done = this.writer.commit(ws)
    s.committed = done
    s.pending++
    try {
      await done
    } catch (err) {
      if (this.live.get(s.id) === s) this.live.delete(s.id)
      throw this.storageFailure(err)
    } finally {
      s.pending--
    }
  }

  private async persistNew(
    owner: string,
    config: unknown,
    machine: Machine,
    parent: { id: string; seq: number } | null,
    history: { copy?: HistoryCopy; opCount: number; seq: number },
  ): Promise<MachineInfo> {
    const id = newMachineId()
    const row: MachineRow = {
      id,
      owner,
      config,
      effective: machine.config,
      createdAt: new Date().toISOString(),
      opCount: history.opCount,
      seq: history.seq,
      status: (machine.state() as { status: string }).status,
      parentId: parent?.id ?? null,
      parentSeq: parent?.seq ?? null,
      diverged: null,
    }
    const s: Session = { id, owner, machine, opCount: row.opCount, seq: row.seq, status: row.status, lastCheckpointOp: row.opCount, committed: Promise.resolve(), pending: 0 }
    await this.commit(s, {
      machineId: id,
      newMachine: { id, owner, config, effective: row.effective, createdAt: row.createdAt, parentId: row.parentId, parentSeq: row.parentSeq },
      ...(history.copy ? { copy: history.copy } : {}),
      ops: [],
      events: [],
      head: { opCount: row.opCount, seq: row.seq, status: row.status },
      ...(row.opCount > 0 ? { checkpoint: checkpoint(machine, row.opCount, row.seq) } : {}),
    })
    this.remember(s)
    return info(row)
  }

  /**
   * At start-up, before serving: events are stored after their ops (see Writer.flushEvents),
   * so a crash can leave a machine's trace short of its op log. The missing events are
   * derived again by replay, from the machine as of its last stored event, and stored.
   * Returns how many machines were completed.
   */
  recoverEvents(): number {
    let completed = 0
    for (const lag of this.guardStorage(() => this.repo.eventLag())) {
      const row = this.repo.getMachine(lag.id)
      if (!row || row.diverged) continue
      try {
        const start = this.rebuild(row, lag.stored)
        const events: EventRow[] = []
        const end = replay(row.config, this.repo.opsBetween(row.id, start.opCount), {
          from: { machine: start.machine, opN: start.opCount, seq: start.seq },
          checkpoints: this.repo.checkpoints(row.id, start.opCount),
          onOp: (_, evs) => {
            for (const e of evs) events.push(eventRow(e))
          },
        })
        if (end.seq !== row.seq) throw new ReplayMismatch(`replay reached seq ${end.seq}, the machine row says seq ${row.seq}`)
        this.guardStorage(() => this.repo.replaceEventsAfter(row.id, start.seq, events))
        completed++
      } catch (err) {
        // A machine that does not replay is marked diverged and not served; the others go on.
        if (err instanceof ReplayMismatch) this.diverged(row.id, err)
        else if (!(err instanceof ServiceError && err.code === 'machine_diverged')) throw err
      }
    }
    return completed
  }

  /** The machine's row, or 404 when it does not exist or belongs to someone else. */
  private row(owner: string, id: string): MachineRow {
    const row = this.guardStorage(() => this.repo.getMachine(id))
    if (!row || row.owner !== owner) throw notFound(`machine ${id}`)
    return row
  }

  private async session(owner: string, id: string): Promise<Session> {
    let s = this.live.get(id)
    if ((s && s.owner !== owner) || this.deleting.has(id)) throw notFound(`machine ${id}`)
    if (s) {
      // Reads must not see ops whose commit is still pending (a crash could take them back).
      // With none pending there is nothing to wait for, and awaiting the settled promise would
      // still cost every request a detour through the microtask queue.
      if (s.pending > 0) {
        await s.committed.catch(() => {})
        if (this.deleting.has(id)) throw notFound(`machine ${id}`)
      }
      if (this.live.get(id) === s) {
        this.remember(s)
        return s
      }
    }
    s = this.live.get(id) ?? this.restore(this.row(owner, id))
    this.remember(s)
    return s
  }

  /** Restore: the latest snapshot, then the ops after it, checking every later checkpoint hash. */
  private restore(row: MachineRow): Session {
    refuseDiverged(row)
    const started = performance.now()
    const r = this.rebuild(row)
    if (r.opCount !== row.opCount || r.seq !== row.seq) {
      throw this.diverged(row.id, new ReplayMismatch(`replay reached op ${r.opCount} seq ${r.seq}, the machine row says op ${row.opCount} seq ${row.seq}`))
    }
    this.log.debug({ machine: row.id, ops: r.opCount, replayed: r.opCount - r.fromOp, ms: performance.now() - started }, 'machine restored')
    return { id: row.id, owner: row.owner, machine: r.machine, opCount: r.opCount, seq: r.seq, status: row.status, lastCheckpointOp: r.lastCheckpointOp, committed: Promise.resolve(), pending: 0 }
  }

  /** The machine as of `seq` (its latest ops when omitted): latest snapshot at or before it, plus replay. */
  private rebuild(row: MachineRow, seq = Number.MAX_SAFE_INTEGER): Replayed & { fromOp: number; lastCheckpointOp: number } {
    try {
      const from = this.guardStorage(() => this.repo.latestSnapshot(row.id, seq))
      const fromOp = from?.opN ?? 0
      const checkpoints = this.guardStorage(() => this.repo.checkpoints(row.id, fromOp))
      const start = from && fromCheckpoint(from)
      const r = replay(row.config, this.repo.opsBetween(row.id, fromOp, seq), { checkpoints, from: start })
      return { ...r, fromOp, lastCheckpointOp: Math.max(fromOp, checkpoints.at(-1)?.opN ?? 0) }
    } catch (err) {
      if (err instanceof ReplayMismatch) throw this.diverged(row.id, err)
      throw err
    }
  }

  private diverged(id: string, err: ReplayMismatch): ServiceError {
    this.log.error({ machine: id, reason: err.message }, 'MACHINE DIVERGED: replay does not reproduce the stored state; machine marked and no longer served')
    this.guardStorage(() => this.repo.markDiverged(id, err.message))
    return new ServiceError('conflict', 'machine_diverged', `machine ${id} failed its restore check and is not served: ${err.message}`)
  }

  private remember(s: Session): void {
    this.live.delete(s.id)
    this.live.set(s.id, s)
    if (this.live.size <= this.limits.liveMachines) return
    // Oldest first; a machine with a commit in flight stays, or a restore could miss its ops.
    for (const [id, old] of this.live) {
      if (this.live.size <= this.limits.liveMachines) break
      if (old.pending === 0) this.live.delete(id)
    }
  }

  private reserveSlot(owner: string): void {
    const pending = this.creating.get(owner) ?? 0
    const count = this.guardStorage(() => this.repo.countMachines(owner))
    if (count + pending >= this.limits.machinesPerOwner) {
      throw new ServiceError('limit', 'machine_limit', `a principal may own at most ${this.limits.machinesPerOwner} machines; delete one first`)
    }
    this.creating.set(owner, pending + 1)
  }

  private releaseSlot(owner: string): void {
    const left = (this.creating.get(owner) ?? 1) - 1
    if (left === 0) this.creating.delete(owner)
    else this.creating.set(owner, left)
  }

  private guardStorage<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw this.storageFailure(err)
    }
  }

  private storageFailure(err: unknown): unknown {
    const code = (err as { code?: unknown }).code
    if (err instanceof StorageError || (typeof code === 'string' && code.startsWith('SQLITE_'))) {
      this.log.error({ err }, 'storage failure')
      return new ServiceError('unavailable', 'storage_unavailable', 'the store could not complete this request; nothing was written, try again later')
    }
    return err
  }
}
