// Spec §3.5 and §7: the persistent kmap pool (kmap / kunmap / kmap_flush_unused),
// B6, B7, wrap and flush, sleeping when full. P32: PKMAP_BASE 0xff800000, LAST_PKMAP 1024.
import t from 'tap';
import {
  P32,
  L1,
  H,
  H1,
  H2,
  ap,
  createMachine,
  bootWithTask,
  spawn,
  ctr,
  task,
  diagIds,
  evs,
  globalFlushes,
  kernelView,
  expectHalted,
  type Machine,
} from '../fixtures/helpers.js';

const slots = (m: Machine) => [...(m.state().pkmap?.slots ?? [])].sort((a, b) => a.nr - b.nr);

t.test('§7.2 first slot is 1; counts 0/1/n; kmap touches no task counter and no fixmap slot', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  t.strictSame(m.state().pkmap, { lastPkmapNr: 0, slots: [], waiters: [] }, 'fresh pool');
  const r1 = ap(m, { op: 'kmap', pid, page: H1 });
  t.strictSame(r1.result, { addr: '0xff801000' });
  t.equal(m.state().pkmap?.lastPkmapNr, 1);
  t.strictSame(slots(m), [{ nr: 1, addr: '0xff801000', pfn: H1, count: 2 }], 'one user -> count 2');
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(m.state().fixmap, []);
  t.equal(evs(r1, 'tlb_flush').length, 0);
  const pm = evs(r1, 'pkmap_map')[0];
  t.equal(pm?.nr, 1);
  t.equal(pm?.pfn, H1);
  const k = evs(r1, 'kmap')[0];
  t.equal(k?.slot, null, 'pool kmap event: slot null');
  t.equal(k?.fixIdx, null);
  t.equal(k?.nr, 1);

  t.strictSame(ap(m, { op: 'kmap', pid, page: H1 }).result, { addr: '0xff801000' }, 'same page, same address');
  t.strictSame(slots(m), [{ nr: 1, addr: '0xff801000', pfn: H1, count: 3 }]);
  ap(m, { op: 'kunmap', pid, page: H1 });
  ap(m, { op: 'kunmap', pid, page: H1 });
  t.strictSame(slots(m), [{ nr: 1, addr: '0xff801000', pfn: H1, count: 1 }], 'no users, PTE kept -> count 1');
  const again = ap(m, { op: 'kmap', pid, page: H1 });
  t.strictSame(again.result, { addr: '0xff801000' }, 'count-1 slot of the same page reused without a new PTE');
  t.equal(evs(again, 'pkmap_map').length, 0, 'no new pool PTE');
  t.strictSame(slots(m), [{ nr: 1, addr: '0xff801000', pfn: H1, count: 2 }]);
  t.strictSame(ap(m, { op: 'kmap', pid, page: H2 }).result, { addr: '0xff802000' });
  t.strictSame(diagIds(m), []);
});

t.test('§7.2 a freed slot is not reused before the wrap / kmap_flush_unused', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap', pid, page: H1 });
  ap(m, { op: 'kunmap', pid, page: H1 });
  t.strictSame(ap(m, { op: 'kmap', pid, page: H2 }).result, { addr: '0xff802000' }, 'slot 1 (count 1) skipped');
  t.strictSame(slots(m).map((s) => [s.nr, s.pfn, s.count]), [
    [1, H1, 1],
    [2, H2, 2],
  ]);
});

t.test('§7.2 kmap_flush_unused: frees count-1 slots with one global flush; nothing to free -> no flush', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap', pid, page: H1 });
  const none = ap(m, { op: 'kmap_flush_unused', pid });
  t.equal(evs(none, 'tlb_flush').length, 0, 'nothing at count 1: no flush');
  ap(m, { op: 'kunmap', pid, page: H1 });
  ap(m, { op: 'kmap', pid, page: H2 });
  const f = ap(m, { op: 'kmap_flush_unused', pid });
  const g = globalFlushes(f);
  t.equal(g.length, 1, 'one TLB flush of the pool on all CPUs');
  t.strictSame(g[0]?.range, { start: '0xff800000', end: '0xffc00000' }, 'whole pool range, end exclusive');
  t.equal(evs(f, 'tlb_flush').length, 1, 'and no per-page flushes');
  t.strictSame(slots(m).map((s) => [s.nr, s.pfn, s.count]), [[2, H2, 2]], 'slot 1 back to 0');
  // H1 lost its pool address: it gets the next free slot after the cursor (2) -> 3
  t.strictSame(ap(m, { op: 'kmap', pid, page: H1 }).result, { addr: '0xff803000' });
});

t.test('§7.2 B6 after the page was flushed out of the pool', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap', pid, page: H1 });
  ap(m, { op: 'kunmap', pid, page: H1 });
  ap(m, { op: 'kmap_flush_unused', pid });
  const out = ap(m, { op: 'kunmap', pid, page: H1 });
  expectHalted(t, m, out, 'B6');
});

t.test('§3.5 lowmem kmap/kunmap: direct address, no pool, no BUG', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  t.strictSame(ap(m, { op: 'kmap', pid, page: L1 }).result, { addr: '0xc0100000' });
  const before = kernelView(m);
  ap(m, { op: 'kunmap', pid, page: L1 });
  ap(m, { op: 'kunmap', pid, page: L1 });
  t.equal(kernelView(m), before);
  t.equal(m.state().status, 'running');
  t.strictSame(slots(m), []);
});

function fill(m: Machine, pid: number, n: number): string[] {
  const addrs: string[] = [];
  for (let i = 0; i < n; i++) addrs.push(ap(m, { op: 'kmap', pid, page: H(i + 1) }).result.addr as string);
  return addrs;
}

t.test('§7.2 wrap: slot 0 is first reached after 1023 maps; no flush when nothing was freed', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const addrs = fill(m, pid, 1023);
  t.equal(addrs[0], '0xff801000');
  t.equal(addrs[1022], '0xffbff000', 'slot 1023 = last pool page');
  t.equal(m.state().pkmap?.lastPkmapNr, 1023);
  const r = ap(m, { op: 'kmap', pid, page: H(1024) });
  t.strictSame(r.result, { addr: '0xff800000' }, 'slot 0 after the wrap');
  t.equal(m.state().pkmap?.lastPkmapNr, 0);
  t.equal(globalFlushes(r).length, 0, 'flush_all_zero found nothing: no TLB flush');
  t.equal(slots(m).length, 1024);
});

t.test('§7.2 wrap with one freed slot: exactly one global flush, freed slot reusable', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  fill(m, pid, 1023); // pages H1..H1023 at slots 1..1023
  ap(m, { op: 'kunmap', pid, page: H(5) }); // slot 5 -> count 1
  const r = ap(m, { op: 'kmap', pid, page: H(1024) });
  t.strictSame(r.result, { addr: '0xff800000' });
  t.equal(globalFlushes(r).length, 1, 'one flush on the wrap');
  t.notOk(slots(m).some((s) => s.pfn === H(5)), 'H5 lost its pool address');
  t.notOk(slots(m).some((s) => s.nr === 5), 'slot 5 free');
  const r2 = ap(m, { op: 'kmap', pid, page: H(1025) });
  t.strictSame(r2.result, { addr: '0xff805000' }, 'scan from the cursor finds the freed slot 5');
  t.equal(globalFlushes(r2).length, 0);
});

t.test('§7.2 PAE: LAST_PKMAP 512, slot 0 reached after 511 maps', async (t) => {
  const { m, pid } = bootWithTask(P32({ config: { X86_PAE: true } }), 0);
  t.equal(m.config.LAST_PKMAP, 512);
  const addrs = fill(m, pid, 511);
  t.equal(addrs[510], '0xff9ff000');
  t.strictSame(ap(m, { op: 'kmap', pid, page: H(512) }).result, { addr: '0xff800000' });
});

t.test('§7.2 sleeping kmap when the pool is full; completes after a kunmap frees a slot and the pool wraps', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  const X = spawn(m, 'X', 1);
  fill(m, A, 1024); // slots 1..1023 then 0: all busy (count 2)
  t.equal(slots(m).length, 1024);
  const r = ap(m, { op: 'kmap', pid: X, page: H(1025) });
  t.strictSame(r.result, { blocked: true });
  t.equal(task(m, X).state, 'sleeping');
  t.strictSame(m.state().pkmap?.waiters, [X]);
  t.ok(evs(r, 'pkmap_wait').length === 1, 'pkmap_wait event');

  // kunmap of a page other than the one freed does not wake anything until count reaches 1
  ap(m, { op: 'kmap', pid: A, page: H(7) }); // slot 7 count 3
  ap(m, { op: 'kunmap', pid: A, page: H(7) }); // count 2: no wake
  t.equal(task(m, X).state, 'sleeping', 'count 3 -> 2 wakes nobody');

  const w = ap(m, { op: 'kunmap', pid: A, page: H(7) }); // slot 7 count 1 -> wake
  t.ok(evs(w, 'pkmap_wake').length >= 1, 'pkmap_wake');
  t.equal(globalFlushes(w).length, 1, 'the rescan wraps and flushes slot 7');
  t.equal(task(m, X).state, 'running', 'X switched in on idle CPU 1 and finished');
  t.strictSame(task(m, X).lastResult, { addr: '0xff807000' });
  t.strictSame(m.state().pkmap?.waiters, []);
  t.strictSame(slots(m).find((s) => s.nr === 7), { nr: 7, addr: '0xff807000', pfn: H(1025), count: 2 });
  t.equal(m.state().pkmap?.lastPkmapNr, 7);
  const x = evs(w, 'kmap').find((e) => e.pid === X);
  t.equal(x?.addr, '0xff807000', "X's kmap event emitted when it finished");
  t.strictSame(diagIds(m), []);
});
