// The writer thread of ThreadWriter: its own connection to the store, one transaction per
// group it is sent, the outcome posted back once the transaction is committed (and, with
// `full` durability, fsynced by SQLite before COMMIT returns).
//
// A group's commit holds its source of truth: machines, ops, heads, checkpoints and
// idempotency records. The events those ops determine wait here until a few thousand have
// gathered, and are then stored in a transaction of their own while the thread has nothing
// else to do (or in the commit of the group that brings them to a higher mark), or once the
// commits pause, or when the main thread asks (a read of the trace). Why: a single-op request
// touches its machine's pages in three event indexes, and a commit of twenty such requests
// from twenty machines wrote ~110 pages; a few thousand events written together share their
// pages, and the commit a request waits for shrinks to its op rows. A crash loses at most the
// waiting events, never an op: start-up derives them again from the op log
// (MachineService.recoverEvents).
//
// Parts of a large write set may arrive first as `stage` messages: they open the transaction
// and are written at once, and the next `commit` message ends that same transaction. If a
// staged write fails, the transaction is rolled back and the next group is refused whole,
// since the staged part belonged to one of its write sets.
import { parentPort, workerData } from 'node:worker_threads'
import { limitSize, openDb } from './db.js'
import { Repo, type HistoryCopy, type WriteSet } from './repo.js'
import { eventsReserve, STORE_EVENTS_IDLE_MS, STORE_EVENTS_ROWS, STORE_EVENTS_SOON_ROWS, unpack, type FromThread, type PackedGroup, type ThreadStore, type ToThread } from './thread-writer.js'

const { file, ...options } = workerData as ThreadStore
const port = parentPort!
let repo: Repo
try {
  repo = new Repo(openDb(file, options))
} catch (err) {
  // The main side treats this as fatal: nothing can be written.
  port.postMessage({ kind: 'fatal', message: `cannot open ${file}: ${(err as Error).message}` } satisfies FromThread)
  process.exit(1)
}
const db = repo.db
port.postMessage({ kind: 'ready' } satisfies FromThread)

const { maxBytes, durability } = options
if (maxBytes !== undefined) limitSize(db, maxBytes - eventsReserve(maxBytes))

// Checkpoints move committed pages from the WAL into the database file. SQLite's own runs
// inside the COMMIT that crosses its threshold (1,000 pages), so every request of that group
// waits for it: 10-20 % of the time of a stream of 1,000-op batches. Here one runs after the
// group's outcome is posted, while the main thread replies and takes the next requests; the
// automatic one stays as a backstop at a size this one never lets the WAL reach.
const CHECKPOINT_ROWS = 4000
db.pragma('wal_autocheckpoint = 10000')
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
/** Rows (ops and events) written since the last checkpoint. */
let rowsSinceCheckpoint = 0
const begin = db.prepare('BEGIN')
const commit = db.prepare('COMMIT')
const rollback = db.prepare('ROLLBACK')

interface Failure {
  code: string | undefined
  message: string
}
/** Why the open transaction was rolled back before its group arrived, if it was. */
let stageFailure: Failure | null = null

/** Write sets whose events are not stored yet, in commit order (the open transaction's last). */
let waiting: Pick<WriteSet, 'machineId' | 'events'>[] = []
let waitingRows = 0
/**
 * A transaction of ours is open (SQLite may have rolled it back on an error already), with
 * these rows written, and the waiting list as it began: a rollback returns to it.
 */
let open = false
let rowsInTransaction = 0
let waitingAtBegin = 0
let waitingRowsAtBegin = 0
/** Groups committed, and how many of them have all their events stored. */
let committedGroups = 0
let storedThrough = 0
/** The main thread asked to hear once the events of everything committed are stored. */
let flushAsked = false
/** Machines to delete once no transaction of ours is open. */
let removals: string[] = []
let idleTimer: NodeJS.Timeout | null = null

function failure(err: unknown): Failure {
  const e = err as { code?: unknown; message?: unknown }
  return { code: typeof e.code === 'string' ? e.code : undefined, message: String(e.message ?? err) }
}

/** Writes every waiting event into the open transaction; the list is cleared once it commits. */
function writeWaiting(): number {
  for (const ws of waiting) repo.writeEvents(ws)
  rowsInTransaction += waitingRows
  return waitingRows
}

/** The waiting events are in a committed transaction now. */
function waitingStored(): void {
  if (idleTimer) (clearTimeout(idleTimer), (idleTimer = null))
  waiting = []
  waitingRows = 0
  storedThrough = committedGroups
}

/**
 * Stores the waiting events in a transaction of their own, between transactions only (the
 * list's tail may belong to an open one), and answers a flush. Such a commit is not synced:
 * its events can be derived again, and the next commit's fsync covers the WAL up to it. On
 * failure the events keep waiting, and go into the commit that next reaches the row mark,
 * which fails the same way while there is no room: the log runs at most that far ahead.
 */
function storeWaiting(): void {
  if (idleTimer) (clearTimeout(idleTimer), (idleTimer = null))
  if (open) return
  let events = 0
  if (waitingRows > 0) {
    if (maxBytes !== undefined) limitSize(db, maxBytes)
    if (durability === 'full') db.pragma('synchronous = NORMAL')
    try {
      begin.run()
      events = writeWaiting()
      commit.run()
      rowsSinceCheckpoint += rowsInTransaction
      waitingStored()
    } catch (err) {
      if (db.inTransaction) rollback.run()
      flushAsked = false
      port.postMessage({ kind: 'storeFailed', ...failure(err) } satisfies FromThread)
      return
    } finally {
      rowsInTransaction = 0
      if (maxBytes !== undefined) limitSize(db, maxBytes - eventsReserve(maxBytes))
      if (durability === 'full') db.pragma('synchronous = FULL')
    }
  }
  if (events > 0 || flushAsked) port.postMessage({ kind: 'stored', through: storedThrough, events } satisfies FromThread)
  flushAsked = false
}

/** Writes a packed group's log into the open transaction, opening it first; its events wait. */
function write(group: PackedGroup): void {
  if (!open) {
    waitingAtBegin = waiting.length
    waitingRowsAtBegin = waitingRows
    begin.run()
    open = true
  }
  for (const ws of unpack(group)) {
    rowsInTransaction += repo.writeLog(ws)
    if (ws.copy) copyWaiting(ws.machineId, ws.copy)
    if (ws.events.length > 0) {
      waiting.push(ws)
      waitingRows += ws.events.length
    }
  }
}

/**
 * A branch copies its parent's stored events in SQL (Repo.writeLog); the parent's events that
 * still wait here are the rest of its history up to the cut, and wait for the branch as well.
 */
function copyWaiting(machineId: string, copy: HistoryCopy): void {
  const events = waiting.flatMap((w) => (w.machineId === copy.from ? w.events.filter((e) => e.seq <= copy.throughSeq) : []))
  if (events.length === 0) return
  waiting.push({ machineId, events })
  waitingRows += events.length
}

function abandon(): void {
  if (!open) return
  open = false
  rowsInTransaction = 0
  if (db.inTransaction) rollback.run()
  waiting.length = waitingAtBegin
  waitingRows = waitingRowsAtBegin
}

/** Commits a group: its log, and every waiting event too once they reach the row mark. */
function commitGroup(group: PackedGroup): FromThread {
  const started = process.hrtime.bigint()
  try {
    write(group)
    const filing = waitingRows >= STORE_EVENTS_ROWS
    const events = filing ? writeWaiting() : 0
    commit.run()
    open = false
    committedGroups++
    // With nothing waiting (a group without events, after everything before it was stored),
    // the group counts as stored at once.
    if (filing || waitingRows === 0) waitingStored()
    rowsSinceCheckpoint += rowsInTransaction
    rowsInTransaction = 0
    return { kind: 'committed', seconds: Number(process.hrtime.bigint() - started) / 1e9, stored: storedThrough, events }
  } catch (err) {
    abandon()
    return { kind: 'failed', ...failure(err) }
  }
}

/** After a commit's outcome is posted: arm the idle store, checkpoint once enough has piled up in the WAL. */
function afterCommit(): void {
  if (waitingRows >= STORE_EVENTS_SOON_ROWS) {
    // setImmediate runs after the messages that have arrived: if none has, the main thread is
    // busy replying and this thread is free, so the events are stored now rather than in the
    // commit that reaches the mark, which a request would wait for.
    setImmediate(storeWaiting)
  } else if (waitingRows > 0) {
    // Re-armed by every commit: under steady load the row mark stores the events instead.
    if (idleTimer) clearTimeout(idleTimer)
    idleTimer = setTimeout(storeWaiting, STORE_EVENTS_IDLE_MS)
  }
  checkpointIfDue()
}

/** Checkpoints the WAL once enough rows have been written (or deleted) since the last time. */
function checkpointIfDue(): void {
  if (rowsSinceCheckpoint < CHECKPOINT_ROWS) return
  rowsSinceCheckpoint = 0
  try {
    checkpoint.run()
  } catch {
    // A failed checkpoint loses nothing (the pages stay in the WAL); the next one retries.
  }
}

/**
 * Deletes the machines asked for, each in a transaction of its own, between transactions (a
 * staged batch of another machine may hold one open). A delete may use the whole quota: it only
 * frees room. The machine's waiting events go with it; were they stored later, they would be
 * rows of a machine that no longer exists.
 */
function serveRemovals(): void {
  const ids = removals
  removals = []
  for (const machineId of ids) {
    if (maxBytes !== undefined) limitSize(db, maxBytes)
    try {
      rowsSinceCheckpoint += repo.deleteMachine(machineId)
    } catch (err) {
      port.postMessage({ kind: 'removeFailed', machineId, ...failure(err) } satisfies FromThread)
      continue
    } finally {
      if (maxBytes !== undefined) limitSize(db, maxBytes - eventsReserve(maxBytes))
    }
    waiting = waiting.filter((w) => w.machineId !== machineId)
    waitingRows = waiting.reduce((n, w) => n + w.events.length, 0)
    if (waiting.length === 0) waitingStored()
    port.postMessage({ kind: 'removed', machineId } satisfies FromThread)
  }
  checkpointIfDue()
}

function onMessage(msg: ToThread): void {
  switch (msg.kind) {
    case 'flush':
      flushAsked = true
      return
    case 'remove':
      removals.push(msg.machineId)
      return
    case 'discard':
      stageFailure = null
      return abandon()
    case 'stage':
      if (stageFailure) return
      try {
        write(msg.group)
      } catch (err) {
        stageFailure = failure(err)
        abandon()
      }
      return
    case 'commit': {
      const reply: FromThread = stageFailure ? { kind: 'failed', ...stageFailure } : commitGroup(msg.group)
      stageFailure = null
      port.postMessage(reply)
      if (reply.kind === 'committed') afterCommit()
      return
    }
    case 'close':
      abandon()
      serveRemovals()
      // Best effort: what cannot be stored now is derived again at the next start.
      storeWaiting()
      db.close()
      port.postMessage({ kind: 'closed' } satisfies FromThread)
      port.close()
  }
}

port.on('message', (msg: ToThread) => {
  onMessage(msg)
  // Removals and flushes are served between transactions, after the commits that came before.
  if (removals.length > 0 && db.open && !open) serveRemovals()
  if (flushAsked && db.open && !open) storeWaiting()
})
