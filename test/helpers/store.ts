// A fresh store in a temp directory, and write sets that need no model.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDb, type Db } from '../../src/store/db.js'
import { Repo, type WriteSet } from '../../src/store/repo.js'

export function tempDbFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'kmaplab-test-')), 'kmaplab.db')
}

export function tempRepo(): { db: Db; repo: Repo; file: string } {
  const file = tempDbFile()
  const db = openDb(file, { durability: 'normal' })
  return { db, repo: new Repo(db), file }
}

/** A write set that creates machine `id` and gives it `n` ops of two events each. */
export function fakeMachine(id: string, owner: string, n: number): WriteSet {
  const ops = []
  const events = []
  for (let i = 1; i <= n; i++) {
    ops.push({ n: i, op: JSON.stringify({ op: 'schedule', pid: i }), seqEnd: 2 * i })
    for (const seq of [2 * i - 1, 2 * i]) {
      const e = { seq, ts: seq * 10, type: seq % 2 ? 'kmap' : 'counter', cpu: i % 2, pid: i }
      events.push({ seq, type: e.type, cpu: e.cpu, pid: e.pid, body: JSON.stringify(e) })
    }
  }
  return {
    machineId: id,
    newMachine: { id, owner, config: { arch: 'x86_32', cpus: 2 }, effective: { arch: 'x86_32', cpus: 2 }, createdAt: 'now', parentId: null, parentSeq: null },
    ops,
    events,
    head: { opCount: n, seq: 2 * n, status: 'running' },
  }
}
