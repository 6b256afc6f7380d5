// Spec §3.7 (fork W9, return-to-user D1), §4 (S1, S2, M1, M2), §5 (switch hooks),
// §6 (migrate_disable / migrate_enable, pinning, affinity), contract §8 scheduling rules.
import t from 'tap';
import {
  P32,
  H1,
  H2,
  L1,
  ap,
  createMachine,
  bootWithTask,
  spawn,
  cpu,
  ctr,
  task,
  ptes,
  diagIds,
  diags,
  evs,
  allEvents,
  kernelView,
} from '../fixtures/helpers.js';

t.test('§5.1 no hooks when the scheduler picks prev again', async (t) => {
  const { m, pid } = bootWithTask(P32(), 1);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  const r = ap(m, { op: 'preempt', cpu: 1 });
  t.strictSame(r.result, { switched: false });
  t.equal(evs(r, 'kmap_sched_out').length, 0);
  t.equal(evs(r, 'tlb_flush').length, 0);
  t.strictSame(ptes(m), [[84, H1, 'PAGE_KERNEL']]);
});

t.test('§5.1 switching between tasks without kmaps runs no kmap hooks', async (t) => {
  const m = createMachine(P32());
  spawn(m, 'A', 0);
  spawn(m, 'B', 0);
  const r = ap(m, { op: 'preempt', cpu: 0 });
  t.strictSame(r.result, { switched: true });
  t.equal(evs(r, 'kmap_sched_out').length + evs(r, 'kmap_sched_in').length, 0);
});

t.test('§6 migrate-disabled task stays on its CPU when preempted and when woken', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  const C = spawn(m, 'C', 3);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 });
  // preempted: stays runnable on CPU 1 although CPUs 0 and 2 are idle
  ap(m, { op: 'preempt', cpu: 1 });
  t.equal(cpu(m, 1).current, B);
  t.strictSame(cpu(m, 1).runqueue, [A]);
  t.equal(task(m, A).cpu, 1);
  t.equal(cpu(m, 0).current, 0, 'CPU 0 still idle: nothing pulled A');
  t.equal(cpu(m, 2).current, 0);
  // A runs again, then sleeps pinned; its mask is changed to {2} meanwhile
  ap(m, { op: 'sleep', pid: B });
  t.equal(cpu(m, 1).current, A);
  ap(m, { op: 'sleep', pid: A });
  t.equal(task(m, A).state, 'sleeping');
  t.strictSame(m.state().fixmap, [], 'switched out');
  ap(m, { op: 'wake', pid: B });
  t.equal(cpu(m, 1).current, B, 'B back on CPU 1');
  const sa = ap(m, { op: 'sched_setaffinity', pid: C, target: A, cpus: [2] });
  t.strictSame(sa.result, { blocked: true }, 'target is migrate-disabled: caller waits');
  t.strictSame(task(m, A).cpusAllowed, [2]);
  // woken: cpus_ptr is {1}, so A goes back to CPU 1 (busy) instead of idle CPU 2
  ap(m, { op: 'wake', pid: A });
  t.equal(task(m, A).cpu, 1, 'woken on CPU 1');
  t.equal(task(m, A).state, 'runnable');
  t.strictSame(cpu(m, 1).runqueue, [A]);
  t.equal(cpu(m, 2).current, 0, 'idle CPU 2 not used');
  ap(m, { op: 'sleep', pid: B });
  t.equal(cpu(m, 1).current, A);
  t.strictSame(ptes(m), [[84, H1, 'PAGE_KERNEL']], 'restored on CPU 1');
  t.strictSame(ap(m, { op: 'access', pid: A, addr: '0xfffab000', write: false }).result, { pfn: H1, prot: 'PAGE_KERNEL' });
  // outermost migrate_enable moves it
  ap(m, { op: 'kunmap_local', pid: A, addr: '0xfffab000' });
  t.equal(task(m, A).cpu, 2);
  t.equal(cpu(m, 2).current, A);
  t.strictSame(task(m, C).lastResult, { ret: 0 });
  t.strictSame(diagIds(m), []);
});

t.test('§6 sched_setaffinity on a task that is not migrate-disabled returns 0 at once and moves it', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const C = spawn(m, 'C', 3);
  const r = ap(m, { op: 'sched_setaffinity', pid: C, target: A, cpus: [2] });
  t.strictSame(r.result, { ret: 0 });
  t.equal(task(m, A).cpu, 2);
  t.strictSame(task(m, A).cpusAllowed, [2]);
  t.equal(task(m, C).state, 'running');
});

t.test('§6 nested migrate_disable pins once; nrPinned counts tasks', async (t) => {
  const { m, pid } = bootWithTask(P32(), 2);
  ap(m, { op: 'migrate_disable', pid });
  ap(m, { op: 'migrate_disable', pid });
  t.equal(task(m, pid).migrationDisabled, 2);
  t.equal(cpu(m, 2).nrPinned, 1);
  ap(m, { op: 'migrate_enable', pid });
  t.equal(cpu(m, 2).nrPinned, 1);
  ap(m, { op: 'migrate_enable', pid });
  t.equal(task(m, pid).migrationDisabled, 0);
  t.equal(cpu(m, 2).nrPinned, 0);
  t.strictSame(diagIds(m), []);
});

t.test('§6 UP build (cpus 1): migrate_disable is empty', async (t) => {
  const { m, pid } = bootWithTask(P32({ cpus: 1 }), 0);
  const r = ap(m, { op: 'kmap_local_page', pid, page: H1 });
  t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 0, pc: 0, pf: 0 }, 'migrationDisabled stays 0');
  t.equal(cpu(m, 0).nrPinned, 0);
  ap(m, { op: 'migrate_disable', pid });
  t.equal(task(m, pid).migrationDisabled, 0);
  ap(m, { op: 'kmap_atomic', pid, page: H2 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 0, pc: 1, pf: 1 });
  ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffba000' });
  ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' });
  ap(m, { op: 'migrate_enable', pid });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(diagIds(m), [], 'no M1 on UP (migrate_enable is empty)');
});

for (const kernel of ['5.17', '5.18', '6.1']) {
  t.test(`§8.7 M1: unbalanced migrate_enable in ${kernel} warns once and touches nothing`, async (t) => {
    const { m, pid } = bootWithTask(P32({ kernel }), 1);
    ap(m, { op: 'migrate_enable', pid });
    t.strictSame(diagIds(m), ['M1']);
    t.equal(diags(m, 'M1')[0]?.kind, 'WARN');
    t.equal(task(m, pid).migrationDisabled, 0);
    t.equal(cpu(m, 1).nrPinned, 0);
    ap(m, { op: 'migrate_enable', pid });
    t.strictSame(diagIds(m), ['M1'], 'once');
    t.equal(cpu(m, 1).nrPinned, 0);
  });
}

for (const kernel of ['5.11.11', '5.15']) {
  t.test(`§8.7 no M1 in ${kernel}: rq.nr_pinned wraps to 4294967295`, async (t) => {
    const { m, pid } = bootWithTask(P32({ kernel }), 1);
    ap(m, { op: 'migrate_enable', pid });
    t.strictSame(diagIds(m), []);
    t.equal(task(m, pid).migrationDisabled, 0, 'mig stays 0');
    t.equal(cpu(m, 1).nrPinned, 4294967295, 'unsigned wrap-around');
    t.equal(cpu(m, 0).nrPinned, 0, 'only the task\'s CPU');
  });
}

t.test('§4 M2: a pinned task changing its own affinity away from its CPU gets -EBUSY, mask unchanged', async (t) => {
  const { m, pid } = bootWithTask(P32(), 1);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  const before = task(m, pid).cpusAllowed;
  t.strictSame(before, [0, 1, 2, 3]);
  const r = ap(m, { op: 'sched_setaffinity', pid, target: pid, cpus: [2] });
  t.ok(r.result.ret === -16 || r.result.ret === '-EBUSY', `ret is -EBUSY (got ${JSON.stringify(r.result.ret)})`);
  t.strictSame(diagIds(m), ['M2']);
  t.equal(diags(m, 'M2')[0]?.kind, 'WARN');
  t.strictSame(task(m, pid).cpusAllowed, before, 'mask unchanged');
  t.equal(task(m, pid).cpu, 1);
  t.equal(task(m, pid).state, 'running');
  ap(m, { op: 'sched_setaffinity', pid, target: pid, cpus: [3] });
  t.strictSame(diagIds(m), ['M2'], 'WARN_ON_ONCE');
});

t.test('§6 M2 not triggered when the new mask contains the current CPU, or when not pinned', async (t) => {
  const { m, pid } = bootWithTask(P32(), 1);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  t.strictSame(ap(m, { op: 'sched_setaffinity', pid, target: pid, cpus: [1, 2] }).result, { ret: 0 });
  t.strictSame(task(m, pid).cpusAllowed, [1, 2]);
  ap(m, { op: 'kunmap_local', pid, addr: '0xfffab000' });
  t.strictSame(ap(m, { op: 'sched_setaffinity', pid, target: pid, cpus: [2] }).result, { ret: 0 });
  t.equal(task(m, pid).cpu, 2, 'moved off CPU 1');
  t.strictSame(diagIds(m), []);
});

t.test('§3.7 W9: fork while holding a local kmap', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  ap(m, { op: 'kmap_atomic', pid, page: H2 });
  const r = ap(m, { op: 'fork', pid, name: 'child' });
  const child = r.result.pid as number;
  t.equal(child, 2);
  t.strictSame(diagIds(m), ['W9']);
  t.equal(diags(m, 'W9')[0]?.kind, 'WARN');
  t.strictSame(ctr(m, child), { kidx: 0, mig: 0, pc: 0, pf: 0 }, 'child: kmap_ctrl zeroed, counters 0');
  t.strictSame(task(m, child).kpte, []);
  t.equal(task(m, child).cpu, 0, "starts on the parent's CPU");
  t.equal(task(m, child).state, 'runnable');
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 2, pc: 1, pf: 1 }, 'parent untouched');
  t.strictSame(ptes(m), [
    [68, H1, 'PAGE_KERNEL'],
    [69, H2, 'PAGE_KERNEL'],
  ]);
  ap(m, { op: 'fork', pid, name: 'child2' });
  t.strictSame(diagIds(m), ['W9'], 'once');
});

t.test('§3.7 fork without local kmaps: no W9', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: L1 });
  ap(m, { op: 'fork', pid, name: 'child' });
  t.strictSame(diagIds(m), []);
});

t.test('§3.7 D1 prints only while debug_locks is on (once per boot, across tasks)', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  const B = spawn(m, 'B', 1);
  ap(m, { op: 'return_to_user', pid: A });
  t.strictSame(diagIds(m), [], 'kidx 0: nothing');
  t.equal(m.state().debugLocks, true);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 });
  ap(m, { op: 'kmap_local_page', pid: B, page: H2 });
  ap(m, { op: 'return_to_user', pid: B });
  t.strictSame(diagIds(m), ['D1']);
  t.equal(m.state().debugLocks, false);
  ap(m, { op: 'return_to_user', pid: A });
  t.strictSame(diagIds(m), ['D1'], 'debug_locks already off: silent');
  t.equal(task(m, A).kmapIdx, 1);
});

t.test('§4 S2 rate limit: two might_sleep in one simulated second print once', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_atomic', pid, page: H1 });
  const r1 = ap(m, { op: 'might_sleep', pid });
  const r2 = ap(m, { op: 'might_sleep', pid });
  const ts1 = allEvents(r1).at(-1)?.ts ?? 0;
  const ts2 = allEvents(r2).at(-1)?.ts ?? ts1;
  t.ok(ts2 - ts1 < 1e9, 'within one simulated second');
  t.equal(diags(m, 'S2').length, 1);
});

t.test('§4 S2 with interrupts disabled and preempt count 0', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'local_irq_disable', pid });
  ap(m, { op: 'might_sleep', pid });
  const s2 = diags(m, 'S2');
  t.equal(s2.length, 1);
  t.match(s2[0]?.message ?? '', /irqs_disabled\(\): 1/);
});

t.test('§6 inside kmap_local: might_sleep quiet, sleeping allowed (no S1), mapping survives', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  ap(m, { op: 'might_sleep', pid });
  ap(m, { op: 'sleep', pid });
  t.strictSame(m.state().fixmap, []);
  ap(m, { op: 'wake', pid });
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']]);
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
  t.strictSame(diagIds(m), []);
});

t.test('§4 S1: voluntary schedule() inside kmap_atomic resets the preempt count', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  spawn(m, 'B', 0);
  ap(m, { op: 'kmap_atomic', pid: A, page: H1 });
  ap(m, { op: 'schedule', pid: A });
  t.strictSame(diags(m, 'S1').length, 1);
  t.equal(task(m, A).preemptCount, 0, 'count reset by the scheduler');
  t.equal(task(m, A).pagefaultDisabled, 1);
  t.equal(task(m, A).migrationDisabled, 1);
  t.equal(m.state().status, 'running');
});

t.test('contract §8: kmap in an interrupt raises S2', async (t) => {
  const { m } = bootWithTask(P32(), 0);
  ap(m, { op: 'irq_enter', cpu: 0 });
  const r = ap(m, { op: 'kmap', cpu: 0, page: L1 });
  t.strictSame(r.result, { addr: '0xc0100000' });
  t.strictSame(diagIds(m), ['S2']);
});

t.test('contract §8: need_resched inside an interrupt switches at irq_exit', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  const B = spawn(m, 'B', 0);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 });
  ap(m, { op: 'irq_enter', cpu: 0 });
  t.strictSame(ap(m, { op: 'preempt', cpu: 0 }).result, { switched: false });
  t.equal(cpu(m, 0).current, A);
  const x = ap(m, { op: 'irq_exit', cpu: 0 });
  t.equal(evs(x, 'sched_switch').length, 1);
  t.equal(cpu(m, 0).current, B);
  t.strictSame(m.state().fixmap, [], "A's kmap switched out");
});

t.test('contract §7/§8: switch event order kmap_sched_out, sched_switch, kmap_sched_in', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 2);
  const B = spawn(m, 'B', 2);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 });
  ap(m, { op: 'preempt', cpu: 2 });
  ap(m, { op: 'kmap_local_page', pid: B, page: H2 });
  const r = ap(m, { op: 'preempt', cpu: 2 });
  const order = r.events.map((e) => e.type).filter((x) => ['kmap_sched_out', 'pte_clear', 'tlb_flush', 'sched_switch', 'kmap_sched_in', 'pte_set'].includes(x));
  t.strictSame(order, ['kmap_sched_out', 'pte_clear', 'tlb_flush', 'sched_switch', 'kmap_sched_in', 'pte_set']);
  t.equal(cpu(m, 2).current, A);
  t.strictSame(ptes(m), [[100, H1, 'PAGE_KERNEL']]);
});

t.test('contract §8: wake of a task that is not sleeping changes nothing', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const before = kernelView(m);
  ap(m, { op: 'wake', pid });
  t.equal(kernelView(m), before);
});

t.test('contract §8: spawn placement (lowest idle CPU, then shortest runqueue)', async (t) => {
  const m = createMachine(P32());
  const pids = [0, 1, 2, 3, 4].map((i) => ap(m, { op: 'spawn', name: `t${i}` }).result.pid as number);
  t.strictSame(pids, [1, 2, 3, 4, 5]);
  t.strictSame(m.state().cpus.map((c) => c.current), [1, 2, 3, 4]);
  t.strictSame(cpu(m, 0).runqueue, [5], 'all busy, equal queues: lowest number');
  t.equal(task(m, 5).state, 'runnable');
});

t.test('§9.2/§9.3 copy_to_user: faults are handled in kmap_local, not with pagefaults disabled', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  t.strictSame(ap(m, { op: 'copy_to_user', pid, bytes: 4096, userPresent: false }).result, { notCopied: 0 });
  ap(m, { op: 'kmap_atomic', pid, page: H2 });
  t.strictSame(ap(m, { op: 'copy_to_user', pid, bytes: 4096, userPresent: false }).result, { notCopied: 4096 });
  t.strictSame(ap(m, { op: 'copy_to_user', pid, bytes: 4096, userPresent: true }).result, { notCopied: 0 });
});

t.test('contract §4: switch_to names the next task', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  const C = spawn(m, 'C', 1);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 });
  ap(m, { op: 'switch_to', cpu: 1, pid: C });
  t.equal(cpu(m, 1).current, C);
  t.strictSame([...cpu(m, 1).runqueue].sort(), [A, B]);
  t.strictSame(m.state().fixmap, []);
  t.equal(task(m, B).state, 'runnable');
});
