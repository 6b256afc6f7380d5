import t from 'tap'
import { mkdtempSync, writeFileSync, readdirSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { defaultMigrationsDir, migrate, SchemaTooNewError } from '../../src/store/migrate.js'
import { openDb } from '../../src/store/db.js'
import { Repo } from '../../src/store/repo.js'

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

t.test('a database written by schema 1 comes through 002 (integer keys) with every row', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-mig-'))
  copyFileSync(join(defaultMigrationsDir, '001_init.sql'), join(dir, '001_init.sql'))
  const file = join(dir, 'old.sqlite')
  const old = new Database(file)
  migrate(old, dir)
  const m = old.prepare(`INSERT INTO machines (id, owner, config, effective, created_at, op_count, seq) VALUES (?, ?, '{}', '{}', ?, ?, ?)`)
  m.run('m_a', 'alice', '2026-01-01', 2, 3)
  m.run('m_b', 'bob', '2026-01-02', 1, 1)
  const op = old.prepare('INSERT INTO ops VALUES (?, ?, ?, ?)')
  op.run('m_a', 1, '{"op":"a1"}', 2)
  op.run('m_a', 2, '{"op":"a2"}', 3)
  op.run('m_b', 1, '{"op":"b1"}', 1)
  const ev = old.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)')
  for (const [id, seq, type] of [['m_a', 1, 'kmap'], ['m_a', 2, 'counter'], ['m_a', 3, 'kmap'], ['m_b', 1, 'spawn']] as const) {
    ev.run(id, seq, type, 0, 1, JSON.stringify({ seq, type, id }))
  }
  old.prepare("INSERT INTO checkpoints VALUES ('m_a', 2, 3, 'h')").run()
  old.close()

  const repo = new Repo(openDb(file))
  t.same(repo.getMachine('m_a')?.seq, 3)
  t.same([...repo.opsBetween('m_a', 0)].map((o) => o.op), ['{"op":"a1"}', '{"op":"a2"}'])
  t.same([...repo.opsBetween('m_b', 0)].map((o) => o.op), ['{"op":"b1"}'])
  t.same(repo.queryEvents('m_a', { after: 0, limit: 10, types: ['kmap'] }).map((b) => JSON.parse(b).seq), [1, 3])
  t.same(repo.queryEvents('m_b', { after: 0, limit: 10 }).map((b) => JSON.parse(b).id), ['m_b'])
  t.same(repo.checkpoints('m_a'), [{ opN: 2, seq: 3, hash: 'h' }])
})
