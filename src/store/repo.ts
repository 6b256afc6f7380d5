// Every SQL statement the server runs, prepared once. Nothing here knows about HTTP or the
// model: rows go in and out as plain values, JSON columns as strings or parsed objects.
import type { Db } from './db.js'

export interface MachineRow {
  id: string
  owner: string
  config: unknown
  effective: unknown
  createdAt: string
  opCount: number
  seq: number
  status: string
  parentId: string | null
  parentSeq: number | null
  diverged: string | null
}

export interface NewMachine {
  id: string
  owner: string
  config: unknown
  effective: unknown
  createdAt: string
  parentId: string | null
  parentSeq: number | null
}

export interface OpRow {
  n: number
  op: string
  seqEnd: number
}

export interface EventRow {
  seq: number
  type: string
  cpu: number | null
  pid: number | null
  body: string
}

export interface Checkpoint {
  opN: number
  seq: number
  hash: string
  /** The whole model after op `opN` (src/sim/snapshot.ts), on the checkpoints that carry one. */
  snapshot?: string
}

/** A checkpoint that carries its snapshot. */
export type Snapshot = Required<Checkpoint>

/**
 * A branch's history, copied by the store from its parent's rows: ops 1..`throughN`, the
 * events up to `throughSeq` (where op `throughN` ends) and the checkpoints before op
 * `throughN`. Copied in SQL, a long parent's history never crosses into JavaScript.
 */
export interface HistoryCopy {
  from: string
  throughN: number
  throughSeq: number
}

/** Everything one commit writes for one machine. */
export interface WriteSet {
  machineId: string
  newMachine?: NewMachine
  /** With newMachine: the history it starts from, before `ops`. */
  copy?: HistoryCopy
  ops: OpRow[]
  events: EventRow[]
  head: { opCount: number; seq: number; status: string }
  checkpoint?: Checkpoint
  idempotency?: { owner: string; key: string; requestHash: string; reply: string }
}

export interface EventQuery {
  after: number
  limit: number
  types?: string[]
  cpus?: number[]
  pids?: number[]
}

interface RawMachine {
  id: string
  owner: string
  config: string
  effective: string
  created_at: string
  op_count: number
  seq: number
  status: string
  parent_id: string | null
  parent_seq: number | null
  diverged: string | null
}

function toMachine(r: RawMachine): MachineRow {
  return {
    id: r.id,
    owner: r.owner,
    config: JSON.parse(r.config),
    effective: JSON.parse(r.effective),
    createdAt: r.created_at,
    opCount: r.op_count,
    seq: r.seq,
    status: r.status,
    parentId: r.parent_id,
    parentSeq: r.parent_seq,
    diverged: r.diverged,
  }
}

export class Repo {
  private readonly s
  private readonly eventQueries = new Map<string, ReturnType<Db['prepare']>>()
  /**
   * Machine id -> its integer key. Ids are random and never reused; a deleted machine's entry
   * is dropped (deleteMachine, forget), since SQLite may give its key to a later machine.
   */
  private readonly keys = new Map<string, number>()

  constructor(readonly db: Db) {
    this.s = {
      insertMachine: db.prepare(`INSERT INTO machines (id, owner, config, effective, created_at, parent_id, parent_seq)
        VALUES (@id, @owner, @config, @effective, @createdAt, @parentId, @parentSeq)`),
      keyOf: db.prepare('SELECT key FROM machines WHERE id = ?').pluck(),
      updateHead: db.prepare('UPDATE machines SET op_count = ?, seq = ?, status = ? WHERE key = ?'),
      insertOp: db.prepare('INSERT INTO ops (mkey, n, op, seq_end) VALUES (?, ?, ?, ?)'),
      insertEvent: db.prepare('INSERT INTO events (mkey, seq, type, cpu, pid, body) VALUES (?, ?, ?, ?, ?, ?)'),
      insertCheckpoint: db.prepare('INSERT OR REPLACE INTO checkpoints (mkey, op_n, seq, state_hash, snapshot) VALUES (?, ?, ?, ?, ?)'),
      copyOps: db.prepare('INSERT INTO ops (mkey, n, op, seq_end) SELECT ?, n, op, seq_end FROM ops WHERE mkey = ? AND n <= ?'),
      copyEvents: db.prepare('INSERT INTO events (mkey, seq, type, cpu, pid, body) SELECT ?, seq, type, cpu, pid, body FROM events WHERE mkey = ? AND seq <= ? ORDER BY seq'),
      copyCheckpoints: db.prepare(`INSERT INTO checkpoints (mkey, op_n, seq, state_hash, snapshot)
        SELECT ?, op_n, seq, state_hash, snapshot FROM checkpoints WHERE mkey = ? AND op_n < ?`),
      insertIdempotency: db.prepare(`INSERT INTO idempotency (owner, key, machine_id, request_hash, reply, created_at)
        VALUES (?, ?, ?, ?, ?, ?)`),
      getMachine: db.prepare('SELECT * FROM machines WHERE id = ?'),
      listMachines: db.prepare('SELECT * FROM machines WHERE owner = ? AND id > ? ORDER BY id LIMIT ?'),
      countMachines: db.prepare('SELECT count(*) AS n FROM machines WHERE owner = ?').pluck(),
      opsBetween: db.prepare('SELECT n, op, seq_end AS seqEnd FROM ops WHERE mkey = ? AND n > ? AND seq_end <= ? ORDER BY n'),
      checkpoints: db.prepare('SELECT op_n AS opN, seq, state_hash AS hash FROM checkpoints WHERE mkey = ? AND op_n > ? ORDER BY op_n'),
      latestSnapshot: db.prepare(`SELECT op_n AS opN, seq, state_hash AS hash, snapshot FROM checkpoints
        WHERE mkey = ? AND seq <= ? AND snapshot IS NOT NULL ORDER BY op_n DESC LIMIT 1`),
      getIdempotency: db.prepare('SELECT machine_id AS machineId, request_hash AS requestHash, reply FROM idempotency WHERE owner = ? AND key = ?'),
      markDiverged: db.prepare('UPDATE machines SET diverged = ? WHERE id = ?'),
      deleteFrom: ['events', 'ops', 'checkpoints'].map((t) => db.prepare(`DELETE FROM ${t} WHERE mkey = ?`)),
      deleteIdempotency: db.prepare('DELETE FROM idempotency WHERE machine_id = ?'),
      storedSeq: db.prepare('SELECT coalesce(max(seq), 0) FROM events WHERE mkey = ?').pluck(),
      deleteEventsAfter: db.prepare('DELETE FROM events WHERE mkey = ? AND seq > ?'),
      // One index probe per machine (max over events_by_seq), not a scan of the trace.
      eventLag: db.prepare(`SELECT id, seq, stored FROM (SELECT id, seq,
        coalesce((SELECT max(e.seq) FROM events e WHERE e.mkey = machines.key), 0) AS stored FROM machines) WHERE seq > stored`),
      deleteMachine: db.prepare('DELETE FROM machines WHERE key = ?'),
    }
  }

  /** The machine's integer key, or undefined when no such machine is stored. */
  private keyOf(id: string): number | undefined {
    let key = this.keys.get(id)
    if (key === undefined) {
      key = this.s.keyOf.get(id) as number | undefined
      if (key !== undefined) this.keys.set(id, key)
    }
    return key
  }

  private requireKey(id: string): number {
    const key = this.keyOf(id)
    if (key === undefined) throw new Error(`machine ${id} is not stored`)
    return key
  }

  /** Writes one machine's share of a commit, events included; the caller supplies the transaction. */
  write(w: WriteSet): void {
    this.writeLog(w)
    this.writeEvents(w)
  }

  /**
   * The source of truth of a write set: the machine, its ops, its head, checkpoint and
   * idempotency record, without the events (which the ops determine). The caller supplies
   * the transaction. Returns the rows of ops and copied history written, which the writer
   * thread counts towards its next WAL checkpoint.
   */
  writeLog(w: WriteSet): number {
    const s = this.s
    if (w.newMachine) {
      const m = w.newMachine
      const { lastInsertRowid } = s.insertMachine.run({ ...m, config: JSON.stringify(m.config), effective: JSON.stringify(m.effective) })
      this.keys.set(m.id, Number(lastInsertRowid))
    }
    const key = this.requireKey(w.machineId)
    const copied = w.copy ? this.copyHistory(key, w.copy) : 0
    for (const o of w.ops) s.insertOp.run(key, o.n, o.op, o.seqEnd)
    s.updateHead.run(w.head.opCount, w.head.seq, w.head.status, key)
    const c = w.checkpoint
    if (c) s.insertCheckpoint.run(key, c.opN, c.seq, c.hash, c.snapshot ?? null)
    if (w.idempotency) {
      const i = w.idempotency
      s.insertIdempotency.run(i.owner, i.key, w.machineId, i.requestHash, i.reply, new Date().toISOString())
    }
    return w.ops.length + copied
  }

  /**
   * A branch's history from its parent's rows. The events are the parent's stored ones: those
   * of the parent still waiting to be stored (ThreadWriter) are the writer's to add. A parent
   * that lost ops under the copy would leave the branch short of its head, so that throws
   * (the caller keeps a parent from being deleted while it is branched; this is the backstop).
   * Returns the rows copied.
   */
  private copyHistory(key: number, c: HistoryCopy): number {
    const from = this.requireKey(c.from)
    const ops = this.s.copyOps.run(key, from, c.throughN).changes
    if (ops !== c.throughN) throw new Error(`branch of ${c.from}: ${ops} of its ${c.throughN} ops are stored`)
    return ops + this.s.copyEvents.run(key, from, c.throughSeq).changes + this.s.copyCheckpoints.run(key, from, c.throughN).changes
  }

  /** The events of a write set whose log is already written (now or in an earlier transaction). */
  writeEvents(w: Pick<WriteSet, 'machineId' | 'events'>): void {
    if (w.events.length === 0) return
    const key = this.requireKey(w.machineId)
    const insert = this.s.insertEvent
    for (const e of w.events) insert.run(key, e.seq, e.type, e.cpu, e.pid, e.body)
  }

  getMachine(id: string): MachineRow | undefined {
    const r = this.s.getMachine.get(id) as RawMachine | undefined
    return r && toMachine(r)
  }

  listMachines(owner: string, after: string, limit: number): MachineRow[] {
    return (this.s.listMachines.all(owner, after, limit) as RawMachine[]).map(toMachine)
  }

  countMachines(owner: string): number {
    return this.s.countMachines.get(owner) as number
  }

  /**
   * The op log in order, lazily: the ops after op `afterN`, stopping after the last op whose
   * events end at or before `seq`.
   */
  opsBetween(machineId: string, afterN: number, seq = Number.MAX_SAFE_INTEGER): IterableIterator<OpRow> {
    return this.s.opsBetween.iterate(this.keyOf(machineId) ?? -1, afterN, seq) as IterableIterator<OpRow>
  }

  /** The state hashes stored after op `afterN` (without their snapshots). */
  checkpoints(machineId: string, afterN = 0): Checkpoint[] {
    return this.s.checkpoints.all(this.keyOf(machineId) ?? -1, afterN) as Checkpoint[]
  }

  /** The latest snapshot taken at or before `seq`. */
  latestSnapshot(machineId: string, seq = Number.MAX_SAFE_INTEGER): Snapshot | undefined {
    return this.s.latestSnapshot.get(this.keyOf(machineId) ?? -1, seq) as Snapshot | undefined
  }

  getIdempotency(owner: string, key: string): { machineId: string; requestHash: string; reply: string } | undefined {
    return this.s.getIdempotency.get(owner, key) as { machineId: string; requestHash: string; reply: string } | undefined
  }

  markDiverged(machineId: string, report: string): void {
    this.s.markDiverged.run(report, machineId)
  }

  /** Deletes the machine and every row of it, in one transaction; returns how many rows went. */
  deleteMachine(machineId: string): number {
    const key = this.keyOf(machineId)
    const rows = this.db.transaction(() => {
      let n = 0
      if (key !== undefined) {
        for (const del of this.s.deleteFrom) n += del.run(key).changes
        n += this.s.deleteMachine.run(key).changes
      }
      return n + this.s.deleteIdempotency.run(machineId).changes
    })()
    this.forget(machineId)
    return rows
  }

  /**
   * Drops the cached key of a machine deleted through another connection (the writer thread's):
   * SQLite may give that key to the next machine created.
   */
  forget(machineId: string): void {
    this.keys.delete(machineId)
  }

  /** The seq of the machine's last stored event (0 without any). */
  storedSeq(machineId: string): number {
    const key = this.keyOf(machineId)
    return key === undefined ? 0 : (this.s.storedSeq.get(key) as number)
  }

  /** Machines whose op log has run ahead of their stored events (events are stored after their ops). */
  eventLag(): { id: string; seq: number; stored: number }[] {
    return this.s.eventLag.all() as { id: string; seq: number; stored: number }[]
  }

  /** Replaces the machine's events after `seq` by `events`, in one transaction. */
  replaceEventsAfter(machineId: string, seq: number, events: EventRow[]): void {
    this.db.transaction(() => {
      this.s.deleteEventsAfter.run(this.requireKey(machineId), seq)
      this.writeEvents({ machineId, events })
    })()
  }

  /**
   * A page of events, the seq of the machine's last stored event and the machine's row, read
   * in one transaction: a page shorter than asked covers every event up to that seq.
   */
  readTrace(machineId: string, q: EventQuery): { rows: string[]; storedSeq: number; machine: MachineRow | undefined } {
    return this.db.transaction(() => ({ rows: this.queryEvents(machineId, q), storedSeq: this.storedSeq(machineId), machine: this.getMachine(machineId) }))()
  }

  /** One page of stored events as their JSON text, in seq order. */
  queryEvents(machineId: string, q: EventQuery): string[] {
    const key = this.keyOf(machineId)
    if (key === undefined) return []
    const where = ['mkey = ?', 'seq > ?']
    const args: unknown[] = [key, q.after]
    const inList = (column: string, values: readonly unknown[] | undefined): void => {
      if (!values || values.length === 0) return
      where.push(`${column} IN (${values.map(() => '?').join(', ')})`)
      args.push(...values)
    }
    inList('type', q.types)
    inList('cpu', q.cpus)
    inList('pid', q.pids)
    const sql = `SELECT body FROM events WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`
    args.push(q.limit)
    // The filter shapes are few (which lists are present and how long), so cache by SQL text.
    let stmt = this.eventQueries.get(sql)
    if (!stmt) {
      if (this.eventQueries.size > 256) this.eventQueries.clear()
      stmt = this.db.prepare(sql).pluck()
      this.eventQueries.set(sql, stmt)
    }
    return (stmt.all as (...a: unknown[]) => string[])(...args)
  }
}
