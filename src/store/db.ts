// Opening the one SQLite file the server keeps everything in.
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { migrate } from './migrate.js'

export type Db = Database.Database

export type Durability = 'full' | 'normal'

export interface OpenOptions {
  /** `full` fsyncs every commit (a reply survives power loss); `normal` survives a process crash only. */
  durability?: Durability
  migrationsDir?: string
  /**
   * A size quota for the database file on this connection (PRAGMA max_page_count): a write
   * that would grow the file past it fails with SQLITE_FULL and its transaction is rolled
   * back. A file already larger is held at its size. Unset: no quota.
   */
  maxBytes?: number
}

export function openDb(file: string, opts: OpenOptions = {}): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true })
  const db = new Database(file)
  // WAL lets readers run beside the single writer and makes a commit one sequential append.
  db.pragma('journal_mode = WAL')
  // In WAL mode NORMAL syncs the WAL only at checkpoints: a commit is in the OS page cache when
  // COMMIT returns, which survives a crash of this process but not of the machine. Acknowledging
  // an op only once it is durable therefore needs FULL (an fsync of the WAL per commit), which
  // is the default; ThreadWriter keeps that fsync off the event loop.
  db.pragma(`synchronous = ${opts.durability === 'normal' ? 'NORMAL' : 'FULL'}`)
  db.pragma('foreign_keys = ON')
  // A second process on the same file waits a little instead of failing at once.
  db.pragma('busy_timeout = 2000')
  try {
    migrate(db, opts.migrationsDir)
    // After the migrations: the quota bounds what the lab stores, not the schema it needs to run.
    if (opts.maxBytes !== undefined) limitSize(db, opts.maxBytes)
  } catch (err) {
    db.close()
    throw err
  }
  return db
}

/** Caps the file at `maxBytes` for writes on this connection (PRAGMA max_page_count). */
export function limitSize(db: Db, maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError(`maxBytes: expected a positive integer, got ${maxBytes}`)
  const pageSize = db.pragma('page_size', { simple: true }) as number
  // At least 1: SQLite reads max_page_count = 0 as a query, which would leave the file uncapped.
  db.pragma(`max_page_count = ${Math.max(1, Math.floor(maxBytes / pageSize))}`)
}
