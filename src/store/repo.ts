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
}

/** Everything one commit writes for one machine. */
export interface WriteSet {
  machineId: string
  newMachine?: NewMachine
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

  constructor(readonly db: Db) {
    this.s = {
      insertMachine: db.prepare(`INSERT INTO machines (id, owner, config, effective, created_at, parent_id, parent_seq)
        VALUES (@id, @owner, @config, @effective, @createdAt, @parentId, @parentSeq)`),
      updateHead: db.prepare('UPDATE machines SET op_count = ?, seq = ?, status = ? WHERE id = ?'),
      insertOp: db.prepare('INSERT INTO ops (machine_id, n, op, seq_end) VALUES (?, ?, ?, ?)'),
      insertEvent: db.prepare('INSERT INTO events (machine_id, seq, type, cpu, pid, body) VALUES (?, ?, ?, ?, ?, ?)'),
      insertCheckpoint: db.prepare('INSERT OR REPLACE INTO checkpoints (machine_id, op_n, seq, state_hash) VALUES (?, ?, ?, ?)'),
      insertIdempotency: db.prepare(`INSERT INTO idempotency (owner, key, machine_id, request_hash, reply, created_at)
        VALUES (?, ?, ?, ?, ?, ?)`),
      getMachine: db.prepare('SELECT * FROM machines WHERE id = ?'),
      listMachines: db.prepare('SELECT * FROM machines WHERE owner = ? AND id > ? ORDER BY id LIMIT ?'),
      countMachines: db.prepare('SELECT count(*) AS n FROM machines WHERE owner = ?').pluck(),
      opsUpTo: db.prepare('SELECT n, op, seq_end AS seqEnd FROM ops WHERE machine_id = ? AND seq_end <= ? ORDER BY n'),
      checkpoints: db.prepare('SELECT op_n AS opN, seq, state_hash AS hash FROM checkpoints WHERE machine_id = ? ORDER BY op_n'),
      getIdempotency: db.prepare('SELECT machine_id AS machineId, request_hash AS requestHash, reply FROM idempotency WHERE owner = ? AND key = ?'),
      markDiverged: db.prepare('UPDATE machines SET diverged = ? WHERE id = ?'),
      deleteFrom: ['events', 'ops', 'checkpoints', 'idempotency'].map((t) =>
        db.prepare(`DELETE FROM ${t} WHERE machine_id = ?`),
      ),
      deleteMachine: db.prepare('DELETE FROM machines WHERE id = ?'),
    }
  }

  /** Writes one machine's share of a commit; the caller supplies the transaction. */
  write(w: WriteSet): void {
    const s = this.s
    if (w.newMachine) {
      const m = w.newMachine
      s.insertMachine.run({ ...m, config: JSON.stringify(m.config), effective: JSON.stringify(m.effective) })
    }
    for (const o of w.ops) s.insertOp.run(w.machineId, o.n, o.op, o.seqEnd)
    for (const e of w.events) s.insertEvent.run(w.machineId, e.seq, e.type, e.cpu, e.pid, e.body)
    s.updateHead.run(w.head.opCount, w.head.seq, w.head.status, w.machineId)
    if (w.checkpoint) s.insertCheckpoint.run(w.machineId, w.checkpoint.opN, w.checkpoint.seq, w.checkpoint.hash)
    if (w.idempotency) {
      const i = w.idempotency
      s.insertIdempotency.run(i.owner, i.key, w.machineId, i.requestHash, i.reply, new Date().toISOString())
    }
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

  /** The op log in order, lazily, stopping after the last op whose events end at or before `seq`. */
  opsUpTo(machineId: string, seq = Number.MAX_SAFE_INTEGER): IterableIterator<OpRow> {
    return this.s.opsUpTo.iterate(machineId, seq) as IterableIterator<OpRow>
  }

  checkpoints(machineId: string): Checkpoint[] {
    return this.s.checkpoints.all(machineId) as Checkpoint[]
  }

  getIdempotency(owner: string, key: string): { machineId: string; requestHash: string; reply: string } | undefined {
    return this.s.getIdempotency.get(owner, key) as { machineId: string; requestHash: string; reply: string } | undefined
  }

  markDiverged(machineId: string, report: string): void {
    this.s.markDiverged.run(report, machineId)
  }

  deleteMachine(machineId: string): void {
    this.db.transaction(() => {
      for (const del of this.s.deleteFrom) del.run(machineId)
      this.s.deleteMachine.run(machineId)
    })()
  }

  /** One page of stored events as their JSON text, in seq order. */
  queryEvents(machineId: string, q: EventQuery): string[] {
    const where = ['machine_id = ?', 'seq > ?']
    const args: unknown[] = [machineId, q.after]
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
