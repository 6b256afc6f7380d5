// Contract §1, §3, §5, §6, §7: refused ops leave the state byte-identical,
// malformed ops, event numbering, determinism, initial state.
import t from 'tap';
import {
  P32,
  P32d,
  H1,
  H2,
  L1,
  ap,
  run,
  createMachine,
  bootWithTask,
  spawn,
  expectRefused,
  expectInvalid,
  allEvents,
  type ApplyOut,
} from '../fixtures/helpers.js';

t.test('contract §6: fresh machine state', async (t) => {
  const m = createMachine(P32());
  const s = m.state();
  t.equal(s.status, 'running');
  t.equal(s.seq, 0);
  t.strictSame(s.tasks, [], 'idle tasks are not listed');
  t.strictSame(s.cpus.map((c) => [c.cpu, c.current, c.runqueue, c.irq, c.irqsDisabled, c.nrPinned]), [
    [0, 0, [], [], false, 0],
    [1, 0, [], [], false, 0],
    [2, 0, [], [], false, 0],
    [3, 0, [], [], false, 0],
  ]);
  t.strictSame(s.fixmap, []);
  t.strictSame(s.pkmap, { lastPkmapNr: 0, slots: [], waiters: [] });
  t.strictSame(s.diagnostics, []);
  t.equal(s.debugLocks, true);
});

t.test('contract §3/§6: spawned task record', async (t) => {
  const m = createMachine(P32());
  const r = ap(m, { op: 'spawn', name: 'T', cpu: 2 });
  t.strictSame(r.result, { pid: 1 });
  const s = m.state();
  const tk = s.tasks[0];
  t.equal(tk?.pid, 1);
  t.equal(tk?.name, 'T');
  t.equal(tk?.cpu, 2);
  t.equal(tk?.state, 'running');
  t.equal(tk?.kmapIdx, 0);
  t.strictSame(tk?.kpte, []);
  t.strictSame(tk?.cpusAllowed, [0, 1, 2, 3]);
  t.equal(s.cpus[2]?.current, 1);
});

t.test('contract §5: refused ops leave the state byte-identical', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1); // runnable, not current
  const S = spawn(m, 'S', 2);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 });
  ap(m, { op: 'sleep', pid: S });
  expectRefused(t, m, { op: 'kmap_local_page', pid: B, page: H2 }, 'not_running', 'runnable task:');
  expectRefused(t, m, { op: 'kunmap_local', pid: B, addr: '0xfffab000' }, 'not_running', 'runnable task unmap:');
  expectRefused(t, m, { op: 'kmap_local_page', pid: 99, page: H2 }, 'no_such_task');
  expectRefused(t, m, { op: 'wake', pid: 99 }, 'no_such_task', 'wake:');
  expectRefused(t, m, { op: 'io_mapping_map_local_wc', pid: A, mapping: 42, offset: 0 }, 'no_such_mapping');
  expectRefused(t, m, { op: 'kmap_local_page', cpu: 0, page: H2 }, 'not_in_irq', 'cpu-named op outside an interrupt:');
  expectRefused(t, m, { op: 'irq_exit', cpu: 0 }, 'not_in_irq', 'irq_exit:');
  // [U] the contract lists both codes; a sleeping task is blocked and also not running
  expectRefused(t, m, { op: 'kmap_local_page', pid: S, page: H2 }, ['task_blocked', 'not_running'], '[U code] sleeping task:');
  ap(m, { op: 'irq_enter', cpu: 1 });
  expectRefused(t, m, { op: 'kmap_local_page', pid: A, page: H2 }, 'in_irq', 'interrupted task:');
  expectRefused(t, m, { op: 'return_to_user', pid: A }, 'in_irq', 'interrupted task return_to_user:');
});

t.test('contract §5: malformed ops -> InvalidOpError naming the field, state unchanged', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  expectInvalid(t, m, { op: 'kmap_local_pages', pid, page: H1 }, /op/);
  expectInvalid(t, m, { op: 'kmap_local_page', pid }, /page/);
  expectInvalid(t, m, { op: 'kmap_local_page', pid, page: true }, /page/);
  expectInvalid(t, m, { op: 'kunmap_local', pid }, /addr/);
  expectInvalid(t, m, { op: 'kunmap_local', pid, addr: true }, /addr/);
  expectInvalid(t, m, { op: 'spawn' }, /name/);
  expectInvalid(t, m, { op: 'access', pid, addr: '0xc0100000', write: 'yes' }, /write/);
});

t.test('contract §2: after a BUG every op is refused with halted', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' }); // W4 + B2
  t.equal(m.state().status, 'halted');
  expectRefused(t, m, { op: 'kmap_local_page', pid, page: H1 }, 'halted');
  expectRefused(t, m, { op: 'preempt', cpu: 0 }, 'halted');
  expectRefused(t, m, { op: 'irq_enter', cpu: 1 }, 'halted');
});

function scriptOps(A: number, B: number): Record<string, unknown>[] {
  return [
    { op: 'kmap_local_page', pid: A, page: H1 },
    { op: 'kmap_atomic', pid: A, page: L1 },
    { op: 'preempt', cpu: 1 },
    { op: 'kunmap_atomic', pid: A, addr: '0xc0100000' },
    { op: 'kmap', pid: B, page: H2 },
    { op: 'irq_enter', cpu: 1 },
    { op: 'kmap_local_page', cpu: 1, page: H2 },
    { op: 'kunmap_local', cpu: 1, addr: '0xfff99000' },
    { op: 'irq_exit', cpu: 1 },
    { op: 'sleep', pid: B },
    { op: 'kunmap_local', pid: A, addr: '0xfff99000' },
  ];
}

t.test('contract §7: event seq from 1 without gaps, common fields, state.seq = last seq', async (t) => {
  const m = createMachine(P32d());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  const seq0 = m.state().seq;
  const outs: ApplyOut[] = run(m, scriptOps(A, B));
  const ev = allEvents(outs);
  t.ok(ev.length > 10, 'events were emitted');
  const first = ev[0]?.seq ?? 0;
  t.equal(first, seq0 + 1, 'continues from the state seq');
  t.strictSame(ev.map((e) => e.seq), ev.map((_, i) => first + i), 'no gaps');
  const lacking = ev.filter((e) => !['seq', 'ts', 'type', 'cpu', 'pid'].every((k) => Object.prototype.hasOwnProperty.call(e, k)));
  t.strictSame(lacking, [], 'every event has seq, ts, type, cpu, pid');
  t.equal(m.state().seq, ev.at(-1)?.seq);
  const ts = ev.map((e) => e.ts);
  t.ok(ts.every((x, i) => i === 0 || x >= (ts[i - 1] ?? 0)), 'ts never goes backwards');
  const m2 = createMachine(P32());
  const r = ap(m2, { op: 'spawn', name: 'X', cpu: 0 });
  t.equal(r.events[0]?.seq, 1, 'first event of a machine has seq 1');
});

t.test('contract §1: same config + same ops -> same results, events and state, byte for byte', async (t) => {
  const go = () => {
    const m = createMachine({ ...P32d(), seed: 7 });
    const A = spawn(m, 'A', 1);
    const B = spawn(m, 'B', 1);
    return { outs: JSON.stringify(run(m, scriptOps(A, B))), state: JSON.stringify(m.state()) };
  };
  const a = go();
  const b = go();
  t.equal(a.outs, b.outs);
  t.equal(a.state, b.state);
});

t.test('contract: addresses are lowercase hex without padding everywhere', async (t) => {
  const m = createMachine(P32d());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  const outs = run(m, scriptOps(A, B));
  const text = JSON.stringify({ outs, state: m.state(), config: m.config });
  const hexes = text.match(/"0x[0-9a-zA-Z]*"/g) ?? [];
  t.ok(hexes.length > 0);
  const bad = hexes.filter((h) => !/^"0x(0|[1-9a-f][0-9a-f]*)"$/.test(h));
  t.strictSame(bad, [], 'every hex string is lowercase and unpadded');
});
