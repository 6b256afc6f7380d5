import t from 'tap'
import { mkdtempSync, writeFileSync, readdirSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { defaultMigrationsDir, migrate, SchemaTooNewError } from '../../src/store/migrate.js'
import { openDb } from '../../src/store/db.js'

t.test('applies every migration once and records it', async (t) => {
  const db = new Database(':memory:')
  const v = migrate(db)
  t.ok(v >= 1)
  const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as { version: number }[]
  t.equal(rows.length, readdirSync(defaultMigrationsDir).filter((f) => f.endsWith('.sql')).length)
  t.equal(migrate(db), v, 'a second run changes nothing')
  t.equal((db.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number }).n, rows.length)
})

t.test('applies only the new ones, in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-mig-'))
  for (const f of readdirSync(defaultMigrationsDir)) copyFileSync(join(defaultMigrationsDir, f), join(dir, f))
  const db = new Database(':memory:')
  const before = migrate(db, dir)
  writeFileSync(join(dir, `${String(before + 1).padStart(3, '0')}_extra.sql`), 'CREATE TABLE extra (x INTEGER);')
  t.equal(migrate(db, dir), before + 1)
  t.ok(db.prepare("SELECT name FROM sqlite_master WHERE name = 'extra'").get())
})

t.test('refuses a schema newer than the code, with a clear message', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'kmaplab-mig-')), 'db.sqlite')
  openDb(file).close()
  const raw = new Database(file)
  raw.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'x')").run()
  raw.close()
  t.throws(() => openDb(file), SchemaTooNewError)
  t.throws(() => openDb(file), /schema is version 999 but this build of kmaplab only knows up to/)
})

t.test('a failing migration leaves no trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-mig-'))
  writeFileSync(join(dir, '001_ok.sql'), 'CREATE TABLE a (x);')
  writeFileSync(join(dir, '002_bad.sql'), 'CREATE TABLE b (x); THIS IS NOT SQL;')
  const db = new Database(':memory:')
  t.throws(() => migrate(db, dir))
  t.same(db.prepare('SELECT version FROM schema_migrations').all(), [{ version: 1 }])
  t.notOk(db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").get())
})
