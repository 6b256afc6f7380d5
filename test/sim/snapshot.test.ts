// Snapshot and restore of a Machine: a machine restored from a snapshot taken between two
// ops behaves from then on exactly like the machine it was taken of (same results, events,
// refusals and state, byte for byte), and its own snapshot is the same text again.
import fc from 'fast-check';
import t from 'tap';
import * as sim from '../../src/sim/index.js';
import { arbConfig, arbIntents, fail, outcome, run, type Json } from './properties/fixtures/driver.js';
import { assertProperty } from './properties/fixtures/harness.js';
import { P32 } from './fixtures/helpers.js';

/**
 * Applies ops[0..k) to a fresh machine, snapshots and restores it, then applies ops[k..)
 * to both: every outcome and the final state must be identical. Returns the snapshot.
 */
function checkSplit(cfg: Json, ops: readonly Json[], k: number): string {
  const original = sim.createMachine(cfg);
  for (const op of ops.slice(0, k)) outcome(original, op);
  const snap = sim.snapshotMachine(original);
  const restored = sim.restoreMachine(snap);
  const again = sim.snapshotMachine(restored);
  if (again !== snap) fail(`snapshot(restore(s)) differs from s after ${k} ops`);
  if (JSON.stringify(restored.config) !== JSON.stringify(original.config)) fail('restored config differs');
  if (JSON.stringify(restored.state()) !== JSON.stringify(original.state())) fail(`restored state differs after ${k} ops`);
  ops.slice(k).forEach((op, i) => {
    const a = outcome(original, op);
    const b = outcome(restored, op);
    if (a !== b) fail(`op #${k + i} ${JSON.stringify(op)} differs after restore at ${k}:\noriginal ${a}\nrestored ${b}`);
  });
  const sa = JSON.stringify(original.state());
  const sb = JSON.stringify(restored.state());
  if (sa !== sb) fail(`final state differs after restore at ${k}:\noriginal ${sa}\nrestored ${sb}`);
  return snap;
}

/** The machine's private kernel state, for the tests that plant values the ops never make. */
type KernelInside = { layout: { highmemStartPfn: number }; tasks: Map<number, Record<string, unknown>> };
const kernelOf = (m: sim.Machine): KernelInside => (m as unknown as { k: KernelInside }).k;

/** A snapshot that holds a blocking op still to finish: a task asleep on, or woken from, the pool. */
const resumePending = (snap: string): boolean => snap.includes('"resume":{');

t.test('a restored machine behaves exactly like the original, for any split point', (t) => {
  let ops = 0;
  assertProperty(
    t,
    fc.property(arbConfig(), arbIntents({ min: 50, max: 300, garbage: 3 }), fc.nat(), (cfg, intents, r) => {
      const log = run(cfg, intents).log.map((e) => e.op);
      checkSplit(cfg, log, r % (log.length + 1));
      ops += log.length;
    }),
    400,
    0x5a4a01,
  );
  t.ok(ops > 20000, `ops in the runs: ${ops}`);
  t.end();
});

t.test('snapshots taken while a kmap waits on a full pool resume it identically', (t) => {
  let pending = 0;
  // Mostly kmaps, and no preempt or irq disabling that would keep a task from sleeping.
  const POOL_HEAVY = { pool_kmap: 30, pool_kunmap: 8, spawn: 10, preempt_disable: 0, irq_disable: 0 };
  assertProperty(
    t,
    fc.property(arbConfig({ poolOnly: true }), arbIntents({ min: 100, max: 300, weights: POOL_HEAVY }), fc.nat(), (cfg, intents, r) => {
      const log = run(cfg, intents).log.map((e) => e.op);
      // Split where the most tasks wait on the pool, so that their kmap finishes after the restore.
      const probe = sim.createMachine(cfg);
      let best = r % (log.length + 1);
      let most = 0;
      log.forEach((op, i) => {
        outcome(probe, op);
        const waiting = probe.state().pkmap?.waiters.length ?? 0;
        if (waiting > most) [most, best] = [waiting, i + 1];
      });
      if (resumePending(checkSplit(cfg, log, best))) pending++;
    }),
    300,
    0x5a4a02,
  );
  t.ok(pending > 50, `splits with a blocked kmap still to finish: ${pending}`);
  t.end();
});

t.test('a kmap asleep on the pool, or woken and not yet run, finishes on the restored machine', (t) => {
  const cfg = P32({ cpus: 1, layout: { lastPkmap: 2 } });
  const [A, B] = [1, 2];
  const ops = [
    { op: 'spawn', name: 'A', cpu: 0 },
    { op: 'spawn', name: 'B', cpu: 0 },
    { op: 'kmap', pid: A, page: 0x40000 },
    { op: 'preempt', cpu: 0 },
    { op: 'kmap', pid: B, page: 0x40001 }, // LAST_PKMAP 2: the pool is now full
    { op: 'preempt', cpu: 0 },
    { op: 'kmap', pid: A, page: 0x40002 }, // A sleeps on pkmap_map_wait; B runs
    { op: 'kunmap', pid: B, page: 0x40001 }, // frees a slot: A is woken, its kmap still to finish
    { op: 'preempt', cpu: 0 }, // A runs and finishes its kmap
    { op: 'kunmap', pid: A, page: 0x40002 },
  ];
  const snaps = ops.map((_, k) => checkSplit(cfg, ops, k));
  t.same(snaps.map(resumePending), [false, false, false, false, false, false, false, true, true, false], 'pending after the sleep and after the wake-up');
  const m = sim.createMachine(cfg);
  for (const op of ops.slice(0, 7)) m.apply(op);
  const asleep = sim.restoreMachine(snaps[7]!);
  t.same(asleep.state().pkmap?.waiters, [A], 'A waits on the restored pool');
  for (const op of ops.slice(7, 9)) asleep.apply(op);
  t.match(asleep.state().tasks.find((x) => x.pid === A)?.lastResult, { addr: /^0x/ }, "A's kmap completed after the restore");
  t.end();
});

t.test('a halted machine restores halted, with its haltReason, and refuses ops alike', (t) => {
  const m = sim.createMachine(P32({ cpus: 1 }));
  const pid = m.apply({ op: 'spawn', name: 'T', cpu: 0 }).result.pid as number;
  t.same(m.apply({ op: 'kunmap', pid, page: 0x40000 }).result, { bug: 'B6' }, 'kunmap of an unmapped page: BUG');
  const r = sim.restoreMachine(sim.snapshotMachine(m));
  t.equal(r.state().status, 'halted');
  t.equal(r.state().haltReason, m.state().haltReason);
  t.equal(JSON.stringify(r.state()), JSON.stringify(m.state()), 'identical state');
  const late = { op: 'spawn', name: 'late' };
  t.equal(outcome(r, late), outcome(m, late), 'the same halted refusal');
  t.match(outcome(r, late), /"code":"halted"/);
  t.end();
});

t.test('restore refuses what is not a snapshot this build reads', (t) => {
  const good = JSON.parse(sim.snapshotMachine(sim.createMachine(P32())));
  const refused = (text: string, msg: RegExp, what: string): void => {
    t.throws(() => sim.restoreMachine(text), { name: 'SnapshotError', message: msg }, what);
  };
  refused('{"format":1,', /not JSON/, 'truncated JSON');
  refused('[]', /no "format"/, 'not an object');
  refused(JSON.stringify({ ...good, format: 2 }), /unsupported snapshot format 2: this build reads format 1/, 'a later format');
  refused(JSON.stringify({ ...good, format: '1' }), /unsupported snapshot format "1"/, 'a format that is not a number');
  refused(JSON.stringify({ format: 1, machine: { $: 'Kernel', f: {} } }), /not a Machine/, 'a graph that is not a Machine');
  refused(JSON.stringify({ format: 1, machine: { $: 'Window', f: {} } }), /unknown tag "Window"/, 'an unknown class');
  refused(JSON.stringify({ format: 1, machine: [{ $: 'ref', id: 7 }] }), /ref to unknown id 7/, 'a dangling ref');
  refused(JSON.stringify({ format: 1, machine: JSON.parse('{"__proto__":{}}') }), /__proto__/, 'a __proto__ field');
  t.equal(sim.SNAPSHOT_FORMAT, 1);
  t.end();
});

t.test('snapshot refuses state it cannot store, naming the field', (t) => {
  const m = sim.createMachine(P32({ cpus: 1 }));
  const pid = m.apply({ op: 'spawn', name: 'T', cpu: 0 }).result.pid as number;
  const task = kernelOf(m).tasks.get(pid)!;
  task.resume = () => undefined;
  t.throws(() => sim.snapshotMachine(m), { name: 'SnapshotError', message: /machine\.k\.cpus\.0\.curr\.resume: a function cannot be stored/ });
  task.resume = new (class Timer {})();
  t.throws(() => sim.snapshotMachine(m), { name: 'SnapshotError', message: /Timer is not a class the snapshot knows/ });
  t.end();
});

t.test('values JSON cannot hold survive: shared objects, non-finite numbers, undefined', (t) => {
  const m = sim.createMachine({ arch: 'x86_64', cpus: 2, config: { DEBUG_KMAP_LOCAL_FORCE_MAP: true } });
  const k = kernelOf(m);
  t.equal(k.layout.highmemStartPfn, Infinity, 'x86_64 has no highmem boundary');
  const pid = m.apply({ op: 'spawn', name: 'T', cpu: 0 }).result.pid as number;
  const shared = { n: -0, u: undefined, nan: NaN };
  k.tasks.get(pid)!.lastResult = { a: shared, b: shared };
  const r = sim.restoreMachine(sim.snapshotMachine(m));
  const rk = kernelOf(r);
  t.equal(rk.layout.highmemStartPfn, Infinity);
  const lr = rk.tasks.get(pid)!.lastResult as { a: typeof shared; b: typeof shared };
  t.equal(lr.a, lr.b, 'one object, referenced twice');
  t.ok(Object.is(lr.a.n, -0) && Number.isNaN(lr.a.nan) && 'u' in lr.a && lr.a.u === undefined);
  t.end();
});

t.test('measurements: a machine after 10k ops', (t) => {
  const cfg = P32({ cpus: 4, layout: { lastPkmap: 16 } });
  const [intents] = fc.sample(arbIntents({ min: 20000, max: 20000 }), { seed: 0x5a4a03, numRuns: 1 });
  const log = run(cfg, intents!).log.map((e) => e.op).slice(0, 10000);
  const m = sim.createMachine(cfg);
  let started = performance.now();
  for (const op of log) outcome(m, op);
  const replayMs = performance.now() - started;
  started = performance.now();
  const snap = sim.snapshotMachine(m);
  const snapshotMs = performance.now() - started;
  started = performance.now();
  const r = sim.restoreMachine(snap);
  const restoreMs = performance.now() - started;
  t.equal(JSON.stringify(r.state()), JSON.stringify(m.state()), 'restored state is the replayed state');
  const st = m.state();
  t.comment(
    `${log.length} ops, ${st.tasks.length} tasks, seq ${st.seq}: snapshot ${snap.length} bytes in ${snapshotMs.toFixed(1)} ms; ` +
      `restore ${restoreMs.toFixed(1)} ms vs replay ${replayMs.toFixed(1)} ms`,
  );
  t.end();
});
