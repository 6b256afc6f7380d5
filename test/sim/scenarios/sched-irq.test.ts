// Spec section 10, worked scenarios about context switches, interrupts,
// return to user and affinity: T15, T16, T18, T20, T21, T23, T40.
import t from 'tap';
import {
  P32,
  P32d,
  P32f,
  P32h,
  H1,
  H2,
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
  localFlushes,
  expectRefused,
} from '../fixtures/helpers.js';

t.test('T15 switching tasks reuses the same address (P32, CPU 1)', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1, [1]);
  const B = spawn(m, 'B', 1, [1]);
  t.equal(cpu(m, 1).current, A, 'A runs');
  t.strictSame(cpu(m, 1).runqueue, [B], 'B waits runnable');

  // 1. A maps H1 with a non-default prot
  const r1 = ap(m, { op: 'kmap_local_page_prot', pid: A, page: H1, prot: 'PAGE_KERNEL_RO' });
  t.strictSame(r1.result, { addr: '0xfffab000', slot: 0, fixIdx: 84 });
  t.strictSame(ctr(m, A), { kidx: 1, mig: 1, pc: 0, pf: 0 });
  t.equal(cpu(m, 1).nrPinned, 1);

  // 2. A is preempted; B runs
  const r2 = ap(m, { op: 'preempt', cpu: 1 });
  t.strictSame(r2.result, { switched: true }, 'a migrate-disabled task is preemptible');
  t.equal(cpu(m, 1).current, B);
  t.equal(task(m, A).state, 'runnable');
  t.equal(task(m, A).cpu, 1, 'A stays on CPU 1');
  t.strictSame(cpu(m, 1).runqueue, [A], 'A queued on CPU 1');
  t.strictSame(m.state().fixmap, [], 'PTE[84] emptied at switch-out');
  t.strictSame(localFlushes(r2), ['0xfffab000'], 'flush(0xfffab000)');
  const types = r2.events.map((e) => e.type).filter((x) => x === 'kmap_sched_out' || x === 'sched_switch' || x === 'kmap_sched_in');
  t.strictSame(types, ['kmap_sched_out', 'sched_switch'], 'sched_out before switch; no sched_in for B (kidx 0)');
  t.strictSame(evs(r2, 'kmap_sched_out')[0]?.slots, [0]);
  const sw = evs(r2, 'sched_switch')[0];
  t.equal(sw?.prevPid, A);
  t.equal(sw?.nextPid, B);
  t.strictSame(ctr(m, A), { kidx: 1, mig: 1, pc: 0, pf: 0 }, 'switch hooks never touch counters');

  // B sees nothing at A's address before mapping
  const f = ap(m, { op: 'access', pid: B, addr: '0xfffab000', write: false }).result;
  t.equal(f.fault, true, "A's mapping does not exist while A is switched out");
  t.notOk('pfn' in f);

  // 3. B maps H2 at the same address
  const r3 = ap(m, { op: 'kmap_local_page', pid: B, page: H2 });
  t.strictSame(r3.result, { addr: '0xfffab000', slot: 0, fixIdx: 84 }, 'same address');
  t.strictSame(ptes(m), [[84, H2, 'PAGE_KERNEL']]);
  t.equal(task(m, B).migrationDisabled, 1);
  t.equal(cpu(m, 1).nrPinned, 2, 'two pinned tasks on rq1');
  ap(m, { op: 'kunmap_local', pid: B, addr: '0xfffab000' });
  t.strictSame(m.state().fixmap, []);
  t.equal(task(m, B).migrationDisabled, 0);
  t.equal(cpu(m, 1).nrPinned, 1);
  const r3b = ap(m, { op: 'sleep', pid: B });

  // 4. A switched in on CPU 1, PTE rewritten with its prot
  t.equal(cpu(m, 1).current, A);
  t.strictSame(ptes(m), [[84, H1, 'PAGE_KERNEL_RO']], 'PTE[84] := {H1, PROT_X}');
  t.strictSame(evs(r3b, 'kmap_sched_in')[0]?.slots, [0]);
  t.strictSame(ap(m, { op: 'access', pid: A, addr: '0xfffab000', write: false }).result,
    { pfn: H1, prot: 'PAGE_KERNEL_RO' }, "A reads H1's data");

  // 5. A unmaps
  ap(m, { op: 'kunmap_local', pid: A, addr: '0xfffab000' });
  t.strictSame(m.state().fixmap, []);
  t.equal(task(m, A).migrationDisabled, 0);
  t.equal(cpu(m, 1).nrPinned, 0);
  t.strictSame(diagIds(m), []);
});

function t16(kernel: string, cfg: (o: { kernel: string }) => Record<string, unknown>) {
  const m = createMachine(cfg({ kernel }));
  const A = spawn(m, 'A', 2);
  const B = spawn(m, 'B', 2);
  const a1 = ap(m, { op: 'kmap_local_page', pid: A, page: H1 }).result;
  const a2 = ap(m, { op: 'kmap_local_page', pid: A, page: H2 }).result;
  const out = ap(m, { op: 'preempt', cpu: 2 });
  const inn = ap(m, { op: 'sleep', pid: B });
  return { m, A, B, a1, a2, out, inn };
}

t.test('T16 debug context switch, fixed kernel (P32d)', async (t) => {
  for (const kernel of ['5.11.11', '6.1']) {
    t.test(`kernel ${kernel}`, async (t) => {
      const { m, A, a1, a2, out, inn } = t16(kernel, P32d);
      t.strictSame(a1, { addr: '0xfff78000', slot: 1, fixIdx: 135 });
      t.strictSame(a2, { addr: '0xfff76000', slot: 3, fixIdx: 137 });
      t.strictSame(localFlushes(out).sort(), ['0xfff76000', '0xfff78000'], 'both slots flushed at switch-out');
      t.strictSame(evs(out, 'kmap_sched_out')[0]?.slots, [1, 3], 'guards 0 and 2 skipped');
      t.equal(evs(out, 'pte_clear').length, 2);
      t.equal(cpu(m, 2).current, A, 'A back after B blocks');
      t.strictSame(evs(inn, 'kmap_sched_in')[0]?.slots, [1, 3]);
      t.strictSame(ptes(m), [
        [135, H1, 'PAGE_KERNEL'],
        [137, H2, 'PAGE_KERNEL'],
      ]);
      t.strictSame(ctr(m, A), { kidx: 4, mig: 2, pc: 0, pf: 0 });
      t.strictSame(diagIds(m), [], 'no W5-W8');
    });
  }
});

t.test('§8.1 guard-slot bug 5.11.0: DEBUG_KMAP_LOCAL without DEBUG_HIGHMEM -> W6 + W8 once', async (t) => {
  for (const [name, cfg] of [
    ['P32d', P32d],
    ['P32f', P32f],
  ] as const) {
    t.test(name, async (t) => {
      const { m, A, B, out, inn } = t16('5.11.0', cfg);
      t.strictSame(diags(m, 'W6').length, 1, 'W6 on switch-out');
      t.equal(evs(out, 'diagnostic').filter((e) => e.id === 'W6').length, 1);
      t.strictSame(diags(m, 'W8').length, 1, 'W8 on switch-in');
      t.equal(evs(inn, 'diagnostic').filter((e) => e.id === 'W8').length, 1);
      t.strictSame(diagIds(m).sort(), ['W6', 'W8'], 'nothing else (no W5/W7)');
      t.strictSame(ptes(m), [
        [135, H1, 'PAGE_KERNEL'],
        [137, H2, 'PAGE_KERNEL'],
      ], 'PTE results still correct');
      t.strictSame(localFlushes(out).sort(), ['0xfff76000', '0xfff78000']);
      // once-only: a second switch cycle prints nothing new
      ap(m, { op: 'wake', pid: B });
      ap(m, { op: 'preempt', cpu: 2 });
      t.equal(cpu(m, 2).current, B);
      t.strictSame(m.state().fixmap, []);
      ap(m, { op: 'sleep', pid: B });
      t.equal(cpu(m, 2).current, A);
      t.strictSame(diagIds(m).sort(), ['W6', 'W8'], 'WARN_ON_ONCE: no repeat');
      t.equal(ptes(m).length, 2);
    });
  }
  t.test('P32h in 5.11.0: guard mode keyed on DEBUG_HIGHMEM is right -> none', async (t) => {
    const { m } = t16('5.11.0', P32h);
    t.strictSame(diagIds(m), []);
    t.equal(ptes(m).length, 2);
  });
});

t.test('T18 hard interrupt nests a local kmap (P32, CPU 0)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });

  ap(m, { op: 'irq_enter', cpu: 0 });
  t.strictSame(cpu(m, 0).irq, [{ kind: 'hardirq', irqsDisabled: true }]);
  expectRefused(t, m, { op: 'kmap_local_page', pid, page: H2 }, 'in_irq', 'interrupted task:');
  const r1 = ap(m, { op: 'kmap_local_page', cpu: 0, page: H2 });
  t.strictSame(r1.result, { addr: '0xfffba000', slot: 1, fixIdx: 69 });
  t.equal(task(m, pid).kmapIdx, 2, 'T.kidx 2 inside the handler');
  t.equal(task(m, pid).migrationDisabled, 2, 'T.mig 2 inside the handler');
  const k = evs(r1, 'kmap')[0];
  t.equal(k?.pid, null, 'interrupt-context event has pid null');
  t.equal(k?.task, pid, 'and names the interrupted task');

  ap(m, { op: 'kunmap_local', cpu: 0, addr: '0xfffba000' });
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']], 'PTE[69] empty');
  t.equal(task(m, pid).kmapIdx, 1);
  t.equal(task(m, pid).migrationDisabled, 1);
  ap(m, { op: 'irq_exit', cpu: 0 });

  t.strictSame(cpu(m, 0).irq, []);
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte, [{ slot: 0, pfn: H1, prot: 'PAGE_KERNEL' }]);
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']]);
  t.strictSame(diagIds(m), []);
});

t.test('T20 hard interrupt with interrupts enabled -> W1, mapping still made (P32, CPU 0)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'irq_enter', cpu: 0, irqsDisabled: false });
  const r = ap(m, { op: 'kmap_local_page', cpu: 0, page: H1 });
  t.strictSame(diagIds(m), ['W1']);
  t.equal(diags(m, 'W1')[0]?.kind, 'WARN');
  t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
  t.equal(task(m, pid).kmapIdx, 1);
  ap(m, { op: 'kunmap_local', cpu: 0, addr: '0xfffbb000' });
  ap(m, { op: 'irq_exit', cpu: 0 });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(m.state().fixmap, []);
  t.strictSame(diagIds(m), ['W1'], 'unmap clean');
});

t.test('T21 returning to user space with a live local kmap -> D1 once (P32, CPU 0)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  t.equal(m.state().debugLocks, true, 'debug_locks starts 1');
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  ap(m, { op: 'return_to_user', pid });
  const d1 = diags(m, 'D1');
  t.equal(d1.length, 1, 'D1 printed');
  t.equal(d1[0]?.kind, 'LOCKDEP');
  t.match(d1[0]?.message ?? '', /DEBUG_LOCKS_WARN_ON\(current->kmap_ctrl\.idx\)/);
  t.equal(m.state().debugLocks, false, 'debug_locks becomes 0');
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 }, 'nothing fixed');
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']]);
  // switched out/in like any other
  const B = spawn(m, 'B', 0);
  ap(m, { op: 'preempt', cpu: 0 });
  t.strictSame(m.state().fixmap, []);
  ap(m, { op: 'sleep', pid: B });
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']]);
  ap(m, { op: 'return_to_user', pid });
  t.strictSame(diagIds(m), ['D1'], 'next return to user: no output');
});

t.test('T23 affinity change while pinned (P32)', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const C = spawn(m, 'C', 3);
  t.strictSame(ap(m, { op: 'kmap_local_page', pid: A, page: H1 }).result, { addr: '0xfffab000', slot: 0, fixIdx: 84 });

  // 1. C calls sched_setaffinity(A, {2}) and blocks
  const r1 = ap(m, { op: 'sched_setaffinity', pid: C, target: A, cpus: [2] });
  t.strictSame(r1.result, { blocked: true });
  t.strictSame(task(m, A).cpusAllowed, [2], 'A.cpus_mask := {2}');
  t.equal(task(m, C).state, 'sleeping', 'C blocks');
  const stop = r1.events.map((e) => e.type).filter((x) => x === 'kmap_sched_out' || x === 'kmap_sched_in');
  t.strictSame(stop, ['kmap_sched_out', 'kmap_sched_in'], "stopper briefly preempts A: A's kmap switched out and back in");
  // 2. A keeps running on CPU 1 with its mapping
  t.equal(task(m, A).cpu, 1);
  t.equal(task(m, A).state, 'running');
  t.equal(cpu(m, 1).current, A);
  t.strictSame(ptes(m), [[84, H1, 'PAGE_KERNEL']]);
  t.strictSame(ap(m, { op: 'access', pid: A, addr: '0xfffab000', write: false }).result, { pfn: H1, prot: 'PAGE_KERNEL' });

  // 3. outermost migrate_enable moves A to CPU 2; C's call returns 0
  const r3 = ap(m, { op: 'kunmap_local', pid: A, addr: '0xfffab000' });
  t.equal(task(m, A).migrationDisabled, 0);
  t.equal(task(m, A).cpu, 2, 'stopper moved A to CPU 2');
  t.equal(cpu(m, 2).current, A);
  t.equal(cpu(m, 1).current, 0, 'CPU 1 back to idle');
  t.ok(evs(r3, 'migrate').length >= 1, 'migrate event');
  const wake = evs(r3, 'task_wake').find((e) => e.ret === 0);
  t.ok(wake, 'task_wake with ret 0 for C');
  t.equal(task(m, C).state, 'running', 'C runs again on idle CPU 3');
  t.strictSame(task(m, C).lastResult, { ret: 0 }, "C's sched_setaffinity returned 0");
  t.equal(cpu(m, 1).nrPinned, 0);

  // 4. next map uses CPU 2's slot 0
  t.strictSame(ap(m, { op: 'kmap_local_page', pid: A, page: H2 }).result, { addr: '0xfff9b000', slot: 0, fixIdx: 100 });
  t.strictSame(diagIds(m), []);
});

t.test('T40 non-default prot survives switching (P32, CPU 1)', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  const r = ap(m, { op: 'kmap_local_page_prot', pid: A, page: H1, prot: 'PAGE_KERNEL_RO' });
  t.strictSame(r.result, { addr: '0xfffab000', slot: 0, fixIdx: 84 });
  t.strictSame(task(m, A).kpte, [{ slot: 0, pfn: H1, prot: 'PAGE_KERNEL_RO' }]);
  t.strictSame(ptes(m), [[84, H1, 'PAGE_KERNEL_RO']]);
  ap(m, { op: 'preempt', cpu: 1 });
  t.strictSame(m.state().fixmap, []);
  const back = ap(m, { op: 'sleep', pid: B });
  t.equal(cpu(m, 1).current, A);
  t.strictSame(ptes(m), [[84, H1, 'PAGE_KERNEL_RO']], 'PTE[84] = {H1, RO}, not PAGE_KERNEL');
  const set = evs(back, 'pte_set').find((e) => e.fixIdx === 84);
  t.equal(set?.pfn, H1, 'pte_set event on switch-in');
  t.strictSame(diagIds(m), []);
  t.ok(allEvents(back).length > 0);
});
