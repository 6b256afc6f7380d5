// The client commands against a real server: machines, ops, state, export, tail, --json,
// --help, and the errors that tell the user what to do.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cli, spawnCli, startServer, waitFor } from './fixtures/cli.js'

const server = await startServer()
t.teardown(() => server.lab.close())
const env = server.env
const P32 = '{"arch":"x86_32","cpus":2,"seed":1,"layout":{"pkmapBase":"0xff800000","highmemStartPfn":229376}}'

/** A port nothing listens on: taken from the OS, then let go. */
function closedPort(): Promise<number> {
  const s = createServer()
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    }),
  )
}

async function newMachine(): Promise<string> {
  const r = await cli(['machine', 'create', P32], env)
  return r.stdout.trim()
}

t.test('--help everywhere; usage errors exit 2 and point at the help', async (t) => {
  const top = await cli(['--help'])
  t.equal(top.code, 0)
  const names = ['serve', 'machine create', 'machine list', 'machine show', 'machine rm', 'op', 'state', 'tail', 'export', 'run', 'convert-check']
  const helps = await Promise.all(names.map((name) => cli([...name.split(' '), '--help'])))
  for (const [i, name] of names.entries()) {
    t.match(top.stdout, `  ${name} `)
    t.equal(helps[i]!.code, 0, name)
    t.match(helps[i]!.stdout, new RegExp(`^kmaplab ${name} `), name)
    t.match(helps[i]!.stdout, /--json/, `${name} lists the common options`)
  }
  const none = await cli([])
  t.equal(none.code, 2)
  t.match(none.stderr, /Usage: kmaplab <command>/)
  const bad = await cli(['machine', 'list', '--colour'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /Unknown option '--colour'.*\nsee: kmaplab machine list --help/s)
  t.match((await cli(['machine'])).stderr, /machine takes one of: create, list, show, rm/)
  t.match((await cli(['export', 'm_AAAAAAAAAAAA'], env)).stderr, /--format is required: one of jsonl, perfetto, ftrace/)
})

t.test('no server, no token, a wrong id: errors that say what to do, exit 3', async (t) => {
  const closed = `http://127.0.0.1:${await closedPort()}`
  const down = await cli(['machine', 'list', '--url', closed])
  t.equal(down.code, 3)
  t.match(down.stderr, `cannot reach the kmaplab server at ${closed} (ECONNREFUSED): is \`kmaplab serve\` running there?`)
  const anon = await cli(['machine', 'list'], { KMAPLAB_URL: server.url })
  t.equal(anon.code, 3)
  t.match(anon.stderr, /HTTP 401 unauthorized.*pass --token or set KMAPLAB_TOKEN/)
  const missing = await cli(['machine', 'show', 'm_AAAAAAAAAAAA'], env)
  t.equal(missing.code, 3)
  t.match(missing.stderr, 'machine m_AAAAAAAAAAAA not found (HTTP 404 not_found)')
  const badConfig = await cli(['machine', 'create', '{"arch":"x86_16","cpus":1}'], env)
  t.match(badConfig.stderr, /field arch/)
})

t.test('machine create, list, show, rm: a round trip, in text and JSON', async (t) => {
  const created = await cli(['machine', 'create', '--arch', 'x86_64', '--cpus', '3', '--json', '{"seed":7}'], env)
  t.equal(created.code, 0, created.stderr)
  const m = JSON.parse(created.stdout) as { id: string; config: { arch: string; cpus: number; seed: number } }
  t.match(m.config, { arch: 'x86_64', cpus: 3, seed: 7 })
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-cli-'))
  writeFileSync(join(dir, 'c.json'), P32)
  const fromFile = (await cli(['machine', 'create', join(dir, 'c.json')], env)).stdout.trim()
  t.match(fromFile, /^m_[A-Za-z0-9_-]{12}$/, 'text output is the id alone')

  const list = JSON.parse((await cli(['machine', 'list', '--json'], env)).stdout) as { machines: { id: string }[] }
  t.ok([m.id, fromFile].every((id) => list.machines.some((x) => x.id === id)))
  const table = await cli(['machine', 'list'], env)
  t.match(table.stdout, /^ID +STATUS +ARCH +CPUS +KERNEL +SEQ +OPS +CREATED\n/)
  t.match(table.stdout, new RegExp(`${m.id} +running +x86_64 +3 +6\\.1 +0 +0 `))

  const shown = await cli(['machine', 'show', m.id], env)
  t.match(shown.stdout, `${m.id}  running\n  x86_64, 3 CPUs, kernel 6.1, seed 7\n`)
  t.same(JSON.parse((await cli(['machine', 'show', m.id, '--json'], env)).stdout), m)

  const rm = await cli(['machine', 'rm', m.id, '--json'], env)
  t.same(JSON.parse(rm.stdout), { deleted: m.id })
  t.equal((await cli(['machine', 'show', m.id], env)).code, 3, 'gone')
  t.equal((await cli(['machine', 'list'], { ...env, KMAPLAB_TOKEN: 'bob-token-0123456789' })).stdout, 'no machines (create one with `kmaplab machine create`)\n', "bob sees none of alice's")
})

t.test('op: one op with its events, a batch from stdin or a file, refusals exit 1', async (t) => {
  const id = await newMachine()
  const spawn = await cli(['op', id, '{"op":"spawn","name":"A","cpu":0}'], env)
  t.equal(spawn.code, 0, spawn.stderr)
  t.match(spawn.stdout, /^seq 2: \{"pid":1\}\n\[000\] 0\.000000\d{3} +#1 - +task_spawn +target=1 name=A/)
  const map = JSON.parse((await cli(['op', id, '--json', '{"op":"kmap_local_page","pid":1,"page":"0x40000"}'], env)).stdout) as { result: { addr: string } }
  t.equal(map.result.addr, '0xfffbb000')

  const jsonl = '{"op":"spawn","name":"B","cpu":1}\n# B maps atomically and sleeps\n{"op":"kmap_atomic","pid":2,"page":"0x40001"}\n{"op":"might_sleep","pid":2}\n'
  const batch = await cli(['op', id], env, jsonl)
  t.equal(batch.code, 0, batch.stderr)
  t.match(batch.stdout, /^applied 3 of 3 ops, seq \d+\n.* diagnostic +id=S2 kind=SCHED /)

  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-cli-'))
  const file = join(dir, 'ops.json')
  writeFileSync(file, JSON.stringify([{ op: 'kunmap_atomic', pid: 2, addr: '0xfffab000' }, { op: 'sleep', pid: 9 }, { op: 'preempt', cpu: 0 }]))
  const refused = await cli(['op', id, '-f', file, '--chunk', '1', '--json'], env)
  t.equal(refused.code, 1)
  t.match(JSON.parse(refused.stdout), { results: [{}], refused: { index: 1, code: 'no_such_task' }, skipped: 1 })

  const one = await cli(['op', id, '{"op":"kunmap_local","pid":7,"addr":"0xfffbb000"}'], env)
  t.equal(one.code, 1)
  t.equal(one.stdout, 'refused (no_such_task): no task with pid 7\n')
  const malformed = await cli(['op', id, '--json', '{"op":"kmap_local_page","pid":1,"page":"nope"}'], env)
  t.equal(malformed.code, 1)
  t.match(JSON.parse(malformed.stdout), { refused: { code: 'invalid_body', field: 'page' } })
})

t.test('state: tables now and as of a seq; --json is the state document', async (t) => {
  const id = await newMachine()
  await cli(['op', id], env, '[{"op":"spawn","name":"A","cpu":1},{"op":"kmap_local_page","pid":1,"page":"0x40000"}]')
  const now = await cli(['state', id], env)
  t.equal(now.code, 0, now.stderr)
  t.match(now.stdout, /^seq 5, ts \d+ ns, running\n/)
  t.match(now.stdout, /\nPID +NAME +CPU +STATE +KMAP_IDX +COUNTERS +SAVED PTES \(slot:pfn\)\n1 +A +1 +running +1 +migrate_disabled=1 +0:0x40000\n/)
  t.match(now.stdout, /\nFIX_IDX +CPU +SLOT +ADDR +PFN +PROT\n84 +1 +0 +0xfffab000 +0x40000 +PAGE_KERNEL\n/)
  const before = JSON.parse((await cli(['state', id, '--at', '2', '--json'], env)).stdout) as { seq: number; tasks: { kmapIdx: number }[]; fixmap: unknown[] }
  t.match(before, { seq: 2, tasks: [{ kmapIdx: 0 }], fixmap: [] })
  t.equal((await cli(['state', id, '--at', 'x'], env)).code, 2)
})

t.test('export: each format to a file that parses, no partial file left', async (t) => {
  const id = await newMachine()
  const ops = [{ op: 'spawn', name: 'A', cpu: 0 }, { op: 'spawn', name: 'B', cpu: 0 }]
  for (let i = 0; i < 100; i++) ops.push({ op: 'kmap_atomic', pid: (i % 2) + 1, page: 0x40000 + i } as never, { op: 'kunmap_atomic', pid: (i % 2) + 1, addr: '0xfffbb000' } as never, { op: 'preempt', cpu: 0 } as never)
  await cli(['op', id], env, JSON.stringify(ops))
  const seq = (JSON.parse((await cli(['machine', 'show', id, '--json'], env)).stdout) as { seq: number }).seq
  const dir = mkdtempSync(join(tmpdir(), 'kmaplab-cli-'))
  for (const format of ['jsonl', 'perfetto', 'ftrace']) {
    const file = join(dir, `trace.${format}`)
    const r = await cli(['export', id, '--format', format, '-o', file, '--json'], env)
    t.equal(r.code, 0, r.stderr)
    t.equal(r.stderr, '', 'no progress bar when stderr is not a terminal')
    const summary = JSON.parse(r.stdout) as { bytes: number; events: number; file: string }
    const text = readFileSync(file, 'utf8')
    t.match(summary, { file, events: seq, bytes: Buffer.byteLength(text) })
    if (format === 'jsonl') t.same(text.trimEnd().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq), Array.from({ length: seq }, (_, i) => i + 1))
    if (format === 'perfetto') {
      t.match(text, /^\{"traceEvents":\[/)
      t.ok((JSON.parse(text) as { traceEvents: unknown[] }).traceEvents.length > seq / 2)
    }
    if (format === 'ftrace') {
      t.match(text, /^# tracer: nop\n/)
      t.equal(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length, seq)
    }
  }
  t.same(readdirSync(dir).sort(), ['trace.ftrace', 'trace.jsonl', 'trace.perfetto'])
  const toStdout = await cli(['export', id, '--format', 'jsonl'], env)
  t.equal(toStdout.stdout.split('\n').length, seq + 1, 'without -o the trace goes to stdout')
})

t.test('tail: the backlog with filters, then live events, one line each', async (t) => {
  const id = await newMachine()
  await cli(['op', id], env, '[{"op":"spawn","name":"A","cpu":0},{"op":"spawn","name":"B","cpu":1},{"op":"kmap_local_page","pid":1,"page":"0x40000"}]')
  const backlog = await cli(['tail', id, '--after', '0', '--types', 'kmap,task_spawn', '--count', '3'], env)
  t.equal(backlog.code, 0, backlog.stderr)
  const lines = backlog.stdout.trimEnd().split('\n')
  t.equal(lines.length, 3)
  t.match(lines[2], /^\[000\] \d\.\d{9} +#\d+ T1 +kmap +api=kmap_local_page addr=0xfffbb000 pfn=0x40000 slot=0 fixIdx=68$/)

  const live = spawnCli(['tail', id, '--pids', '2', '--json', '-n', '2'], env)
  const exited = new Promise<number | null>((resolve) => live.on('close', resolve))
  const out = waitFor(live.stdout!, /\n.*\n/)
  t.match(await waitFor(live.stderr!, /live after seq/), new RegExp(`^kmaplab tail: ${id} live after seq 7 \\(Ctrl-C to stop\\)`))
  await cli(['op', id], env, '[{"op":"kmap_local_page","pid":1,"page":"0x40001"},{"op":"kmap_atomic","pid":2,"page":"0x40002"}]')
  const events = (await out).trimEnd().split('\n').map((l) => JSON.parse(l) as { pid: number; type: string })
  t.ok(events.every((e) => e.pid === 2), 'only pid 2')
  t.equal(events[0]!.type, 'kmap')
  t.equal(await exited, 0, 'stops after --count events')

  const halted = spawnCli(['tail', id], env)
  const said = waitFor(halted.stderr!, /machine halted at seq \d+/)
  await waitFor(halted.stderr!, /live after seq/)
  await cli(['op', id], env, '[{"op":"kunmap_local","pid":1,"addr":"0xfffbb000"},{"op":"kunmap_local","pid":1,"addr":"0xfffbb000"},{"op":"kunmap_local","pid":1,"addr":"0xfffbb000"}]')
  t.match(await said, /kernel BUG/)
})
