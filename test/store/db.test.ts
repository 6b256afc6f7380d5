// openDb's size quota (maxBytes): PRAGMA max_page_count on the connection it opens.
import t from 'tap'
import { openDb } from '../../src/store/db.js'
import { Repo } from '../../src/store/repo.js'
import { fakeMachine, tempDbFile } from './fixtures/store.js'

const MiB = 1024 * 1024
const pragma = (db: ReturnType<typeof openDb>, name: string): number => db.pragma(name, { simple: true }) as number

t.test('maxBytes sets max_page_count from the page size; without it the connection has no quota', async (t) => {
  const file = tempDbFile()
  const capped = openDb(file, { maxBytes: 3 * MiB })
  t.teardown(() => capped.close())
  t.equal(pragma(capped, 'max_page_count'), (3 * MiB) / pragma(capped, 'page_size'))
  const plain = openDb(file)
  t.teardown(() => plain.close())
  t.ok(pragma(plain, 'max_page_count') > 1_000_000, 'the quota is the connection\'s, not the file\'s')
})

t.test('a write past the quota fails with SQLITE_FULL and leaves nothing', async (t) => {
  const db = openDb(tempDbFile(), { maxBytes: MiB })
  t.teardown(() => db.close())
  const repo = new Repo(db)
  repo.db.transaction(() => repo.write(fakeMachine('m_a', 'x', 10)))()
  t.throws(() => repo.db.transaction(() => repo.write(fakeMachine('m_b', 'x', 20_000)))(), { code: 'SQLITE_FULL' })
  t.equal(repo.getMachine('m_b'), undefined)
  t.ok(pragma(db, 'page_count') <= MiB / pragma(db, 'page_size'))
})

t.test('a file already past the quota is held at its size', async (t) => {
  const file = tempDbFile()
  const db = openDb(file)
  const repo = new Repo(db)
  repo.db.transaction(() => repo.write(fakeMachine('m_a', 'x', 5_000)))()
  const size = pragma(db, 'page_count')
  t.ok(size * pragma(db, 'page_size') > MiB, 'the file is over 1 MiB')
  db.close()
  const capped = openDb(file, { maxBytes: MiB })
  t.teardown(() => capped.close())
  t.equal(pragma(capped, 'max_page_count'), size)
})

t.test('a maxBytes that is not a positive integer is refused by name', async (t) => {
  for (const bad of [0, -1, 1.5, NaN]) t.throws(() => openDb(tempDbFile(), { maxBytes: bad }), /^maxBytes: expected a positive integer/)
})
