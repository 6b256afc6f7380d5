// Applies migrations/NNN_name.sql in order, each in its own transaction, and records them.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type Database from 'better-sqlite3'

// Two levels up from src/store/ or dist/store/ is the project root in both layouts.
export const defaultMigrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url))

export class SchemaTooNewError extends Error {
  constructor(dbVersion: number, codeVersion: number) {
    super(
      `the database schema is version ${dbVersion} but this build of kmaplab only knows up to ` +
        `version ${codeVersion}; run a newer kmaplab or point KMAPLAB_DB at another file`,
    )
    this.name = 'SchemaTooNewError'
  }
}

interface Migration {
  version: number
  name: string
  sql: string
}

export function listMigrations(dir: string): Migration[] {
  return readdirSync(dir)
    .map((file) => /^(\d{3})_(\w+)\.sql$/.exec(file))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ version: Number(m[1]), name: m[2]!, sql: readFileSync(join(dir, m[0]), 'utf8') }))
    .sort((a, b) => a.version - b.version)
}

/** Returns the schema version the database is at afterwards. */
export function migrate(db: Database.Database, dir = defaultMigrationsDir): number {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
  const migrations = listMigrations(dir)
  const known = migrations.at(-1)?.version ?? 0
  const current = (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0
  if (current > known) throw new SchemaTooNewError(current, known)
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
  for (const m of migrations) {
    if (m.version <= current) continue
    db.transaction(() => {
      db.exec(m.sql)
      record.run(m.version, m.name, new Date().toISOString())
    })()
  }
  return Math.max(current, known)
}
