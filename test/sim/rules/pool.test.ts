// Spec §3.5 and §7: the persistent kmap pool (kmap / kunmap / kmap_flush_unused),
// B6, B7, wrap and flush, sleeping when full. P32: PKMAP_BASE 0xff800000, LAST_PKMAP 1024.
import t from 'tap';
import fc from 'fast-check';
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
  type ApplyOut,
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

t.test('§7.2 two sleepers for the same page: the second finds it mapped and adds its count', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  const X = spawn(m, 'X', 1);
  const Y = spawn(m, 'Y', 2);
  fill(m, A, 1024);
  t.strictSame(ap(m, { op: 'kmap', pid: X, page: H(1025) }).result, { blocked: true });
  t.strictSame(ap(m, { op: 'kmap', pid: Y, page: H(1025) }).result, { blocked: true });
  t.strictSame([...(m.state().pkmap?.waiters ?? [])].sort(), [X, Y]);
  const w = ap(m, { op: 'kunmap', pid: A, page: H(7) }); // slot 7 -> count 1, wake all
  t.equal(globalFlushes(w).length, 1, 'one wrap flush');
  t.strictSame(task(m, X).lastResult, { addr: '0xff807000' });
  t.strictSame(task(m, Y).lastResult, { addr: '0xff807000' });
  t.strictSame(slots(m).find((s) => s.nr === 7), { nr: 7, addr: '0xff807000', pfn: H(1025), count: 3 }, 'two users -> count 3');
  t.strictSame(m.state().pkmap?.waiters, []);
  t.strictSame(diagIds(m), []);
});

t.test('§7.2 kunmap dropping a count to 2 or more wakes nobody', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  const X = spawn(m, 'X', 1);
  fill(m, A, 1024);
  ap(m, { op: 'kmap', pid: X, page: H(1025) });
  ap(m, { op: 'kmap', pid: A, page: H(3) }); // count 3
  const r = ap(m, { op: 'kunmap', pid: A, page: H(3) }); // count 2
  t.equal(evs(r, 'pkmap_wake').length, 0);
  t.equal(task(m, X).state, 'sleeping');
  t.strictSame(m.state().pkmap?.waiters, [X]);
});

t.test('§7.2 property: random kmap/kunmap/kmap_flush_unused follow the spec pseudo-code (PAE, LAST_PKMAP 512)', async (t) => {
  let wraps = 0;
  fc.assert(
    fc.property(
      fc.array(fc.record({ kind: fc.integer({ min: 0, max: 9 }), page: fc.integer({ min: 0, max: 39 }) }), {
        minLength: 300,
        maxLength: 700,
      }),
      (cmds) => {
        const LAST = 512;
        const BASE = 0xff800000;
        const hex = (n: number) => '0x' + (BASE + n * 4096).toString(16);
        const { m, pid } = bootWithTask(P32({ config: { X86_PAE: true } }), 0);
        // reference state, straight from spec §7.2
        const count = new Array<number>(LAST).fill(0);
        const ptePfn = new Array<number | null>(LAST).fill(null);
        const vaddr = new Map<number, number>();
        let last = 0;
        const held = new Map<number, number>();
        const flushAllZero = (): boolean => {
          let any = false;
          for (let n = 0; n < LAST; n++) {
            if (count[n] !== 1) continue;
            count[n] = 0;
            const p = ptePfn[n];
            if (p !== null && p !== undefined) vaddr.delete(p);
            ptePfn[n] = null;
            any = true;
          }
          return any;
        };
        const check = (out: ApplyOut, expectFlush: boolean): boolean => {
          if (globalFlushes(out).length !== (expectFlush ? 1 : 0)) return false;
          const want = [];
          for (let n = 0; n < LAST; n++) {
            if ((count[n] ?? 0) > 0) want.push({ nr: n, addr: hex(n), pfn: ptePfn[n], count: count[n] });
          }
          if (JSON.stringify(slots(m)) !== JSON.stringify(want)) return false;
          return m.state().pkmap?.lastPkmapNr === last;
        };
        const kmap = (pfn: number): boolean => {
          let expectFlush = false;
          let nr = vaddr.get(pfn);
          if (nr === undefined) {
            for (;;) {
              last = (last + 1) % LAST;
              if (last === 0) {
                wraps++;
                if (flushAllZero()) expectFlush = true;
              }
              if (count[last] === 0) break;
            }
            nr = last;
            ptePfn[nr] = pfn;
            count[nr] = 1;
            vaddr.set(pfn, nr);
          }
          count[nr] = (count[nr] ?? 0) + 1;
          held.set(pfn, (held.get(pfn) ?? 0) + 1);
          const out = ap(m, { op: 'kmap', pid, page: pfn });
          return out.result.addr === hex(nr) && check(out, expectFlush);
        };
        const kunmap = (pfn: number): boolean => {
          const nr = vaddr.get(pfn)!;
          count[nr] = (count[nr] ?? 0) - 1;
          held.set(pfn, (held.get(pfn) ?? 0) - 1);
          return check(ap(m, { op: 'kunmap', pid, page: pfn }), false);
        };
        // prelude: 480 pages mapped and released (count 1): cursor at 480, wrap comes soon
        for (let i = 0; i < 480; i++) {
          if (!kmap(H(1001 + i)) || !kunmap(H(1001 + i))) return false;
        }
        for (const { kind, page } of cmds) {
          const pfn = H(page + 1);
          const h = held.get(pfn) ?? 0;
          if (kind <= 1) {
            const expectFlush = flushAllZero();
            if (!check(ap(m, { op: 'kmap_flush_unused', pid }), expectFlush)) return false;
          } else if (kind <= 5 ? h < 2 : h === 0) {
            if (!kmap(pfn)) return false;
          } else if (!kunmap(pfn)) return false;
        }
        return m.state().diagnostics.length === 0 && m.state().status === 'running';
      },
    ),
    { numRuns: 8 },
  );
  t.ok(wraps > 0, `the generated runs wrapped the pool (${wraps} wraps)`);
});

t.test('contract §8: kmap in an interrupt that would have to sleep halts the machine with S1', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 0);
  spawn(m, 'X', 1);
  fill(m, A, 1024);
  ap(m, { op: 'irq_enter', cpu: 1 });
  const out = ap(m, { op: 'kmap', cpu: 1, page: H(1025) });
  t.equal(m.state().status, 'halted');
  t.ok(diagIds(m).includes('S2'), 'might_sleep splat first');
  const s1 = m.state().diagnostics.filter((d) => d.id === 'S1');
  t.equal(s1.length, 1, 'scheduling while atomic in an interrupt');
  t.equal(s1[0]?.kind, 'SCHED');
  t.equal(evs(out, 'halt').length, 1);
});
