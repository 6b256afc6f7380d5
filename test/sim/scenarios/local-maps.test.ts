// Spec section 10, worked scenarios T01-T12 (local maps, kmap_atomic, pfn maps,
// FORCE_MAP, out-of-window unmaps). Every expected number is the spec's own.
import t from 'tap';
import {
  P32,
  P32d,
  P32f,
  L1,
  H1,
  H2,
  ap,
  bootWithTask,
  cpu,
  ctr,
  task,
  ptes,
  pte,
  diagIds,
  diags,
  evs,
  localFlushes,
  kernelView,
} from '../fixtures/helpers.js';

t.test('T01 lowmem shortcut (P32, CPU 2)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 2);
  const r1 = ap(m, { op: 'kmap_local_page', pid, page: L1 });
  t.strictSame(r1.result, { addr: '0xc0100000', slot: null, fixIdx: null }, 'direct address, no slot');
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 }, 'no counter moved');
  t.strictSame(m.state().fixmap, [], 'no PTE change');
  t.equal(cpu(m, 2).nrPinned, 0, 'not pinned');
  t.equal(evs(r1, 'pte_set').length, 0, 'no pte_set event');

  const before = kernelView(m);
  const r2 = ap(m, { op: 'kunmap_local', pid, addr: '0xc0100123' });
  t.strictSame(r2.result, {}, 'kunmap_local has no result fields');
  t.equal(kernelView(m), before, 'kunmap_local of a direct address changes nothing');
  t.strictSame(diagIds(m), [], 'no diagnostic (>= PAGE_OFFSET, outside the window, no FORCE_MAP)');
  t.equal(evs(r2, 'tlb_flush').length, 0, 'no flush');
});

t.test('T02 two highmem maps on CPU 2 and unmap with an offset (P32)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 2);

  const r1 = ap(m, { op: 'kmap_local_page', pid, page: H1 });
  t.strictSame(r1.result, { addr: '0xfff9b000', slot: 0, fixIdx: 100 });
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte, [{ slot: 0, pfn: H1, prot: 'PAGE_KERNEL' }]);
  t.strictSame(m.state().fixmap, [
    { fixIdx: 100, cpu: 2, slot: 0, addr: '0xfff9b000', pfn: H1, prot: 'PAGE_KERNEL' },
  ]);
  t.equal(evs(r1, 'tlb_flush').length, 0, 'mapping does not flush');
  t.equal(cpu(m, 2).nrPinned, 1, 'rq2.nr_pinned 1');

  const r2 = ap(m, { op: 'kmap_local_page', pid, page: H2 });
  t.strictSame(r2.result, { addr: '0xfff9a000', slot: 1, fixIdx: 101 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 2, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte, [
    { slot: 0, pfn: H1, prot: 'PAGE_KERNEL' },
    { slot: 1, pfn: H2, prot: 'PAGE_KERNEL' },
  ]);
  t.strictSame(ptes(m), [
    [100, H1, 'PAGE_KERNEL'],
    [101, H2, 'PAGE_KERNEL'],
  ]);
  t.equal(cpu(m, 2).nrPinned, 1, 'nested migrate_disable does not pin twice');

  const r3 = ap(m, { op: 'kunmap_local', pid, addr: '0xfff9a800' });
  t.strictSame(ptes(m), [[100, H1, 'PAGE_KERNEL']], 'PTE[101] empty');
  t.strictSame(localFlushes(r3), ['0xfff9a000'], 'flush(0xfff9a000), page-aligned');
  t.equal(evs(r3, 'tlb_flush')[0]?.cpu, 2, 'flush on CPU 2');
  t.strictSame(task(m, pid).kpte, [{ slot: 0, pfn: H1, prot: 'PAGE_KERNEL' }], 'kpte[1]=0');
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });

  const r4 = ap(m, { op: 'kunmap_local', pid, addr: '0xfff9b000' });
  t.strictSame(m.state().fixmap, [], 'PTE[100] empty');
  t.strictSame(localFlushes(r4), ['0xfff9b000']);
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte, []);
  t.equal(cpu(m, 2).nrPinned, 0, 'rq2.nr_pinned 0');
  t.strictSame(diagIds(m), [], 'diagnostics none');
});

t.test('T03 guard slots with DEBUG_KMAP_LOCAL (P32d, CPU 2)', async (t) => {
  const { m, pid } = bootWithTask(P32d(), 2);
  const r1 = ap(m, { op: 'kmap_local_page', pid, page: H1 });
  t.strictSame(r1.result, { addr: '0xfff78000', slot: 1, fixIdx: 135 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 1, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte, [{ slot: 1, pfn: H1, prot: 'PAGE_KERNEL' }], 'kpte[0]=0, kpte[1]=H1');

  const r2 = ap(m, { op: 'kmap_local_page', pid, page: H2 });
  t.strictSame(r2.result, { addr: '0xfff76000', slot: 3, fixIdx: 137 });
  t.strictSame(ctr(m, pid), { kidx: 4, mig: 2, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte, [
    { slot: 1, pfn: H1, prot: 'PAGE_KERNEL' },
    { slot: 3, pfn: H2, prot: 'PAGE_KERNEL' },
  ]);

  t.equal(pte(m, 134), undefined, 'guard PTE[134] (0xfff79000) empty');
  t.equal(pte(m, 136), undefined, 'guard PTE[136] (0xfff77000) empty');
  t.equal(pte(m, 138), undefined, 'guard PTE[138] (0xfff75000) empty');
  t.strictSame(
    m.state().fixmap.map((f) => [f.fixIdx, f.addr, f.slot, f.cpu]).sort(),
    [
      [135, '0xfff78000', 1, 2],
      [137, '0xfff76000', 3, 2],
    ],
  );

  ap(m, { op: 'kunmap_local', pid, addr: '0xfff76000' });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 1, pc: 0, pf: 0 });
  t.strictSame(ptes(m), [[135, H1, 'PAGE_KERNEL']], 'PTE[137] emptied');
  ap(m, { op: 'kunmap_local', pid, addr: '0xfff78000' });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(m.state().fixmap, [], 'PTE[135] emptied');
  t.strictSame(diagIds(m), []);
});

t.test('T06 kmap_atomic counters and sleeping inside it (P32, CPU 0)', async (t) => {
  t.test('step 1 + step 2: mutex_lock (might_sleep) inside kmap_atomic -> S2', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    const r1 = ap(m, { op: 'kmap_atomic', pid, page: H1 });
    t.strictSame(r1.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 1, pf: 1 });
    t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']]);

    const before = ctr(m, pid);
    ap(m, { op: 'might_sleep', pid });
    const s2 = diags(m, 'S2');
    t.equal(s2.length, 1, 'S2 printed');
    t.equal(s2[0]?.kind, 'SCHED');
    t.match(s2[0]?.message ?? '', /sleeping function called from invalid context/);
    t.match(s2[0]?.message ?? '', /in_atomic\(\): 1, irqs_disabled\(\): 0/);
    t.equal(s2[0]?.pid, pid);
    t.strictSame(ctr(m, pid), before, 'counters unchanged by might_sleep');
    t.equal(m.state().status, 'running', 'S2 is not a BUG');
  });

  t.test('step 3: block inside kmap_atomic -> S1, pc reset, kmap survives the switch', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'kmap_atomic', pid, page: H1 });
    const rs = ap(m, { op: 'sleep', pid });
    const s1 = diags(m, 'S1');
    t.equal(s1.length, 1, 'S1 scheduling while atomic');
    t.equal(s1[0]?.kind, 'SCHED');
    t.match(s1[0]?.message ?? '', /scheduling while atomic/);
    t.match(s1[0]?.message ?? '', /0x00000002/, 'count printed as 0x00000002');
    t.equal(m.state().status, 'running', 'S1 is a printk, not a BUG');
    t.equal(task(m, pid).state, 'sleeping');
    t.equal(cpu(m, 0).current, 0, 'CPU 0 runs its idle task');
    t.strictSame(m.state().fixmap, [], 'PTE[68] cleared at switch-out');
    t.strictSame(localFlushes(rs), ['0xfffbb000'], 'flush(0xfffbb000) at switch-out');

    const rw = ap(m, { op: 'wake', pid });
    t.equal(task(m, pid).state, 'running');
    t.equal(task(m, pid).cpu, 0, 'back on CPU 0');
    t.equal(cpu(m, 0).current, pid);
    t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']], 'PTE[68] restored at switch-in');
    t.ok(evs(rw, 'kmap_sched_in').length === 1, 'kmap_sched_in event');
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 1 }, 'pc reset to 0 by the scheduler, rest kept');
  });

  t.test('step 4: kunmap_atomic undoes everything', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'kmap_atomic', pid, page: H1 });
    const r = ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffbb000' });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(m.state().fixmap, []);
    t.strictSame(localFlushes(r), ['0xfffbb000']);
    t.strictSame(diagIds(m), []);
  });
});

t.test('T07 kmap_atomic of a lowmem page (P32, CPU 0)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const r = ap(m, { op: 'kmap_atomic', pid, page: L1 });
  t.strictSame(r.result, { addr: '0xc0100000', slot: null, fixIdx: null });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 1, pf: 1 });
  t.strictSame(m.state().fixmap, [], 'no PTE change');
  t.equal(cpu(m, 0).nrPinned, 0);
  ap(m, { op: 'kunmap_atomic', pid, addr: '0xc0100000' });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(diagIds(m), []);
});

t.test('T09 kmap_local_pfn always takes a slot (P32, CPU 0)', async (t) => {
  t.test('kmap_local_pfn of a lowmem pfn', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    const r = ap(m, { op: 'kmap_local_pfn', pid, pfn: 0x00100 });
    t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 }, 'not 0xc0100000');
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
    t.strictSame(ptes(m), [[68, 0x100, 'PAGE_KERNEL']]);
    t.strictSame(diagIds(m), []);
  });
  t.test('kmap_atomic_pfn of a lowmem pfn on a fresh task', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    const r = ap(m, { op: 'kmap_atomic_pfn', pid, pfn: 0x00100 });
    t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 1, pf: 1 });
    t.strictSame(ptes(m), [[68, 0x100, 'PAGE_KERNEL']]);
    ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffbb000' });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(diagIds(m), []);
  });
});

t.test('T10 FORCE_MAP maps lowmem pages (P32f, CPU 0)', async (t) => {
  const { m, pid } = bootWithTask(P32f(), 0);
  const r = ap(m, { op: 'kmap_local_page', pid, page: L1 });
  t.strictSame(r.result, { addr: '0xfffba000', slot: 1, fixIdx: 69 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 1, pc: 0, pf: 0 });
  t.strictSame(ptes(m), [[69, 0x100, 'PAGE_KERNEL']]);
  ap(m, { op: 'kunmap_local', pid, addr: '0xfffba000' });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(m.state().fixmap, []);
  t.strictSame(diagIds(m), []);
});

t.test('T12 out-of-window addresses without FORCE_MAP (P32, CPU 0)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const before = kernelView(m);
  ap(m, { op: 'kunmap_local', pid, addr: '0x08048000' });
  t.strictSame(diagIds(m), ['W3'], 'W3 for a user address');
  t.equal(diags(m, 'W3')[0]?.kind, 'WARN');
  const s = m.state();
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 }, 'no counter changes');
  t.strictSame(s.fixmap, []);
  t.equal(s.status, 'running');

  const mid = kernelView(m);
  t.not(mid, before, 'only the diagnostic was added');
  ap(m, { op: 'kunmap_local', pid, addr: '0xff801000' });
  t.equal(kernelView(m), mid, 'pool address: silent, nothing changes');
  t.strictSame(diagIds(m), ['W3'], 'no new diagnostic for a pool address');
});
