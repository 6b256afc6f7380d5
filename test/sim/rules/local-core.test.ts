// Spec §3.1 / §3.2 / §4: the generic kmap_local core (push/pop, nesting limits,
// unmap of the top slot, W1-W4, B1, B2), the HIGHMEM page APIs, counter events.
import t from 'tap';
import fc from 'fast-check';
import {
  P32,
  P32d,
  P32f,
  P32h,
  L1,
  L2,
  H,
  H1,
  H2,
  H3,
  ap,
  run,
  createMachine,
  bootWithTask,
  ctr,
  cpu,
  task,
  ptes,
  pte,
  diagIds,
  diags,
  evs,
  localFlushes,
  kernelView,
  expectHalted,
} from '../fixtures/helpers.js';

t.test('§2.2 B1: 15 nested maps without debug, the 16th BUGs', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  let last: Record<string, unknown> = {};
  for (let k = 1; k <= 15; k++) last = ap(m, { op: 'kmap_local_page', pid, page: H(k) }).result;
  t.strictSame(last, { addr: '0xfffad000', slot: 14, fixIdx: 82 }, 'CPU 0 slot 14 = index 82');
  t.strictSame(ctr(m, pid), { kidx: 15, mig: 15, pc: 0, pf: 0 });
  t.equal(m.state().fixmap.length, 15);
  t.strictSame(diagIds(m), []);
  const out = ap(m, { op: 'kmap_local_page', pid, page: H(16) });
  expectHalted(t, m, out, 'B1');
  t.strictSame(ctr(m, pid), { kidx: 16, mig: 16, pc: 1, pf: 0 }, 'kidx already incremented, mig and pc already raised');
  t.equal(pte(m, 83), undefined, 'slot 15 (index 83) never mapped');
});

t.test('§2.2 B1: 16 nested maps with DEBUG_KMAP_LOCAL, the 17th BUGs', async (t) => {
  const { m, pid } = bootWithTask(P32d(), 0);
  let last: Record<string, unknown> = {};
  for (let k = 1; k <= 16; k++) last = ap(m, { op: 'kmap_local_page', pid, page: H(k) }).result;
  t.strictSame(last, { addr: '0xfff9c000', slot: 31, fixIdx: 99 }, 'CPU 0 slot 31 = index 99');
  t.strictSame(ctr(m, pid), { kidx: 32, mig: 16, pc: 0, pf: 0 });
  t.strictSame(
    m.state().fixmap.map((f) => f.slot).sort((a, b) => (a ?? 0) - (b ?? 0)),
    [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31],
    'only odd slots mapped',
  );
  t.strictSame(diagIds(m), []);
  const out = ap(m, { op: 'kmap_local_page', pid, page: H(17) });
  expectHalted(t, m, out, 'B1');
  t.strictSame(ctr(m, pid), { kidx: 34, mig: 17, pc: 1, pf: 0 });
});

t.test('§2.2 FORCE_MAP: lowmem pages count against the same 16-map limit', async (t) => {
  const { m, pid } = bootWithTask(P32f(), 1);
  for (let k = 0; k < 16; k++) ap(m, { op: 'kmap_local_page', pid, page: L1 + k });
  t.equal(task(m, pid).kmapIdx, 32);
  t.equal(m.state().status, 'running');
  const out = ap(m, { op: 'kmap_local_page', pid, page: L2 });
  expectHalted(t, m, out, 'B1');
});

t.test('§5.3 / §9.3.7 interrupts share the task stack: 14 + 1 fits, 15 + 1 BUGs in the handler', async (t) => {
  t.test('14 + 1', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    for (let k = 1; k <= 14; k++) ap(m, { op: 'kmap_local_page', pid, page: H(k) });
    ap(m, { op: 'irq_enter', cpu: 0 });
    const r = ap(m, { op: 'kmap_local_page', cpu: 0, page: H(15) });
    t.strictSame(r.result, { addr: '0xfffad000', slot: 14, fixIdx: 82 });
    t.equal(task(m, pid).kmapIdx, 15);
    t.equal(m.state().status, 'running');
  });
  t.test('15 + 1', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    for (let k = 1; k <= 15; k++) ap(m, { op: 'kmap_local_page', pid, page: H(k) });
    ap(m, { op: 'irq_enter', cpu: 0 });
    const out = ap(m, { op: 'kmap_local_page', cpu: 0, page: H(16) });
    expectHalted(t, m, out, 'B1');
  });
});

t.test('§3.1 wrong-order unmap: W4 once, the TOP slot is torn down, flush goes to the given address', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  run(m, [
    { op: 'kmap_local_page', pid, page: H1 }, // slot 0, 0xfffbb000, idx 68
    { op: 'kmap_local_page', pid, page: H2 }, // slot 1, 0xfffba000, idx 69
    { op: 'kmap_local_page', pid, page: H3 }, // slot 2, 0xfffb9000, idx 70
  ]);
  const r1 = ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' });
  t.strictSame(diagIds(m), ['W4']);
  t.equal(diags(m, 'W4')[0]?.kind, 'WARN');
  t.strictSame(ptes(m), [
    [68, H1, 'PAGE_KERNEL'],
    [69, H2, 'PAGE_KERNEL'],
  ], 'top (H3, index 70) torn down, H1 stays');
  t.strictSame(localFlushes(r1), ['0xfffbb000'], 'flush of the address passed in, not of the real slot');
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 2, pc: 0, pf: 0 });
  t.strictSame(task(m, pid).kpte.map((k) => k.slot), [0, 1]);

  const r2 = ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' });
  t.strictSame(diagIds(m), ['W4'], 'second wrong unmap prints nothing new');
  t.equal(evs(r2, 'diagnostic').length, 0);
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']], 'again the top (H2, index 69) went');
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });

  ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' });
  t.strictSame(m.state().fixmap, []);
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(diagIds(m), ['W4']);
});

t.test('§3.1 unmap with an empty stack: W4 then B2, halted', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const out = ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' });
  t.strictSame(diagIds(m), ['W4', 'B2'], 'W4 first, then B2');
  expectHalted(t, m, out, 'B2');
});

t.test('§4 B2: double unmap -> W4 then B2', async (t) => {
  const { m, pid } = bootWithTask(P32(), 3);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  ap(m, { op: 'kunmap_local', pid, addr: '0xfff8b000' });
  t.strictSame(diagIds(m), []);
  const out = ap(m, { op: 'kunmap_local', pid, addr: '0xfff8b000' });
  t.strictSame(diagIds(m), ['W4', 'B2']);
  expectHalted(t, m, out, 'B2');
});

t.test('§2.3 the window covers every CPU: another CPU\'s slot address pops our own top (W4)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  // 0xfff7c000 = vaddr(FIX_KMAP_END=131) = CPU 3 slot 15: inside the window
  const r = ap(m, { op: 'kunmap_local', pid, addr: '0xfff7c000' });
  t.strictSame(diagIds(m), ['W4']);
  t.strictSame(m.state().fixmap, [], 'CPU 0 slot 0 torn down');
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(localFlushes(r), ['0xfff7c000']);
});

t.test('§3.1 window bounds: inclusive at both ends, any offset inside the page', async (t) => {
  t.test('0xfffbbfff is inside the page at vaddr(BEGIN)', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'kmap_local_page', pid, page: H1 });
    ap(m, { op: 'kunmap_local', pid, addr: '0xfffbbfff' });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(diagIds(m), []);
  });
  t.test('just above (0xfffbc000) and just below (0xfff7bfff) the window: silent, nothing', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'kmap_local_page', pid, page: H1 });
    const before = kernelView(m);
    ap(m, { op: 'kunmap_local', pid, addr: '0xfffbc000' });
    ap(m, { op: 'kunmap_local', pid, addr: '0xfff7bfff' });
    t.equal(kernelView(m), before);
    t.strictSame(diagIds(m), []);
  });
});

t.test('§4 W3: user address (< PAGE_OFFSET) warns once; PAGE_OFFSET itself is silent', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  const before = ctr(m, pid);
  ap(m, { op: 'kunmap_local', pid, addr: '0xbffff000' });
  t.strictSame(diagIds(m), ['W3']);
  t.strictSame(ctr(m, pid), before, 'no counter changes');
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']]);
  ap(m, { op: 'kunmap_local', pid, addr: '0x08048000' });
  t.strictSame(diagIds(m), ['W3'], 'once');
  ap(m, { op: 'kunmap_local', pid, addr: '0xc0000000' });
  t.strictSame(diagIds(m), ['W3'], 'PAGE_OFFSET: silent');
  t.strictSame(ctr(m, pid), before);
});

t.test('§4 W2: FORCE_MAP, out-of-window address warns once and pops nothing (mapping leaks)', async (t) => {
  const { m, pid } = bootWithTask(P32f(), 0);
  const r = ap(m, { op: 'kmap_local_page', pid, page: L1 });
  t.strictSame(r.result, { addr: '0xfffba000', slot: 1, fixIdx: 69 });
  ap(m, { op: 'kunmap_local', pid, addr: '0xc0100000' });
  t.strictSame(diagIds(m), ['W2']);
  t.equal(diags(m, 'W2')[0]?.kind, 'WARN');
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 1, pc: 0, pf: 0 }, 'no pop, no migrate_enable');
  t.strictSame(ptes(m), [[69, L1, 'PAGE_KERNEL']]);
  ap(m, { op: 'kunmap_local', pid, addr: '0x08048000' });
  t.strictSame(diagIds(m), ['W2'], 'user address under FORCE_MAP: W2 site (already fired), never W3');
});

t.test('§4 W2 (not W3) for a user address under FORCE_MAP', async (t) => {
  const { m, pid } = bootWithTask(P32f(), 0);
  ap(m, { op: 'kunmap_local', pid, addr: '0x08048000' });
  t.strictSame(diagIds(m), ['W2']);
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
});

t.test('§4 W1 once; softirq never warns', async (t) => {
  t.test('hardirq with irqs enabled, twice', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'irq_enter', cpu: 0, irqsDisabled: false });
    ap(m, { op: 'kmap_local_page', cpu: 0, page: H1 });
    ap(m, { op: 'kmap_local_page', cpu: 0, page: H2 });
    t.strictSame(diagIds(m), ['W1'], 'WARN_ON_ONCE');
    t.equal(task(m, pid).kmapIdx, 2, 'both mappings made');
  });
  t.test('softirq with irqs enabled', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'irq_enter', cpu: 0, kind: 'softirq', irqsDisabled: false });
    const r = ap(m, { op: 'kmap_local_page', cpu: 0, page: H1 });
    t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
    t.strictSame(diagIds(m), []);
    t.equal(task(m, pid).migrationDisabled, 1, "interrupt acts on the interrupted task's mig");
    ap(m, { op: 'kunmap_local', cpu: 0, addr: '0xfffbb000' });
    ap(m, { op: 'irq_exit', cpu: 0 });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  });
  t.test('hardirq with irqs disabled (normal case)', async (t) => {
    const { m } = bootWithTask(P32(), 0);
    ap(m, { op: 'irq_enter', cpu: 0 });
    ap(m, { op: 'kmap_local_page', cpu: 0, page: H1 });
    t.strictSame(diagIds(m), []);
  });
});

t.test('§5.3 an interrupt that returns without unmapping leaves its slot; the task\'s next unmap hits W4', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  ap(m, { op: 'irq_enter', cpu: 0 });
  ap(m, { op: 'kmap_local_page', cpu: 0, page: H2 });
  ap(m, { op: 'irq_exit', cpu: 0 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 2, pc: 0, pf: 0 });
  ap(m, { op: 'kunmap_local', pid, addr: '0xfffbb000' });
  t.strictSame(diagIds(m), ['W4']);
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']], "the interrupt's slot (69) was popped instead");
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
});

t.test('§3.2 kmap_local_page_prot / kmap_atomic_prot keep the prot in kpte and the PTE', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page_prot', pid, page: H1, prot: 'PAGE_KERNEL_RO' });
  ap(m, { op: 'kmap_atomic_prot', pid, page: H2, prot: 'PAGE_KERNEL_RO' });
  t.strictSame(task(m, pid).kpte, [
    { slot: 0, pfn: H1, prot: 'PAGE_KERNEL_RO' },
    { slot: 1, pfn: H2, prot: 'PAGE_KERNEL_RO' },
  ]);
  t.strictSame(ptes(m), [
    [68, H1, 'PAGE_KERNEL_RO'],
    [69, H2, 'PAGE_KERNEL_RO'],
  ]);
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 2, pc: 1, pf: 1 });
  t.strictSame(ap(m, { op: 'access', pid, addr: '0xfffba123', write: false }).result, { pfn: H2, prot: 'PAGE_KERNEL_RO' });
});

t.test('§3.2 kmap_local_page_prot of a lowmem page: direct, prot irrelevant, nothing changes', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const r = ap(m, { op: 'kmap_local_page_prot', pid, page: L2, prot: 'PAGE_KERNEL_RO' });
  t.strictSame(r.result, { addr: '0xc1234000', slot: null, fixIdx: null });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
});

t.test('contract §4: page given as a hex string is the same page', async (t) => {
  const { m, pid } = bootWithTask(P32(), 2);
  const r = ap(m, { op: 'kmap_local_page', pid, page: '0x40000' });
  t.strictSame(r.result, { addr: '0xfff9b000', slot: 0, fixIdx: 100 });
  t.strictSame(ptes(m), [[100, H1, 'PAGE_KERNEL']]);
});

t.test('contract §7: one counter event per op and task, only changed counters, absolute values', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  const r1 = ap(m, { op: 'kmap_local_page', pid, page: H1 });
  const c1 = evs(r1, 'counter');
  t.equal(c1.length, 1, 'one counter event');
  t.equal(c1[0]?.pid, pid);
  t.equal(c1[0]?.migrationDisabled, 1);
  t.equal(c1[0]?.kmapIdx, 1);
  t.notOk('pagefaultDisabled' in (c1[0] ?? {}), 'pagefaultDisabled did not change');

  const r2 = ap(m, { op: 'kmap_atomic', pid, page: H2 });
  const c2 = evs(r2, 'counter');
  t.equal(c2.length, 1);
  t.equal(c2[0]?.preemptCount, 1);
  t.equal(c2[0]?.pagefaultDisabled, 1);
  t.equal(c2[0]?.migrationDisabled, 2, 'absolute, not a delta');
  t.equal(c2[0]?.kmapIdx, 2);

  const r3 = ap(m, { op: 'kmap_local_page', pid, page: L1 });
  t.equal(evs(r3, 'counter').length, 0, 'lowmem shortcut: nothing changed, no counter event');
});

t.test('§5.2 access: a mapped slot reads its page; after unmap it faults', async (t) => {
  const { m, pid } = bootWithTask(P32(), 1);
  ap(m, { op: 'kmap_local_page', pid, page: H2 });
  t.strictSame(ap(m, { op: 'access', pid, addr: '0xfffab800', write: true }).result, { pfn: H2, prot: 'PAGE_KERNEL' });
  ap(m, { op: 'kunmap_local', pid, addr: '0xfffab000' });
  const f = ap(m, { op: 'access', pid, addr: '0xfffab000', write: false }).result;
  t.equal(f.fault, true, 'fault after unmap');
  t.notOk('pfn' in f, 'no page behind the address');
});

t.test('§2.3/§3.1 property: LIFO map/unmap on any CPU follows the fixmap formula', async (t) => {
  // vaddr = FIXADDR_TOP - (FIX_KMAP_BEGIN + slot + KM*cpu) * 4096, slot = depth*INCR + (INCR-1)
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.integer({ min: 0, max: 3 }),
      fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }),
      (debug, c, steps) => {
        const KM = debug ? 33 : 16;
        const INCR = debug ? 2 : 1;
        const maxDepth = debug ? 16 : 15;
        const { m, pid } = bootWithTask(debug ? P32d() : P32(), c);
        const stack: { addr: string; pfn: number; fixIdx: number }[] = [];
        let n = 0;
        for (const push of steps) {
          if (push && stack.length < maxDepth) {
            const slot = stack.length * INCR + (INCR - 1);
            const fixIdx = 68 + slot + KM * c;
            const addr = '0x' + (0xfffff000 - fixIdx * 4096).toString(16);
            const pfn = H(++n);
            const r = ap(m, { op: 'kmap_local_page', pid, page: pfn }).result;
            if (r.addr !== addr || r.slot !== slot || r.fixIdx !== fixIdx) return false;
            stack.push({ addr, pfn, fixIdx });
          } else if (!push && stack.length > 0) {
            const top = stack.pop()!;
            ap(m, { op: 'kunmap_local', pid, addr: top.addr });
          }
          const s = task(m, pid);
          if (s.kmapIdx !== stack.length * INCR || s.migrationDisabled !== stack.length) return false;
          if (cpu(m, c).nrPinned !== (stack.length > 0 ? 1 : 0)) return false;
          const want = stack.map((e) => [e.fixIdx, e.pfn]).sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0));
          const got = ptes(m).map(([f, p]) => [f, p]);
          if (JSON.stringify(want) !== JSON.stringify(got)) return false;
        }
        return m.state().diagnostics.length === 0;
      },
    ),
    { numRuns: 60 },
  );
  t.pass('property held');
});

t.test('§4 no check that the unmapping context is the mapping one: an interrupt can pop the task\'s slot', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 });
  ap(m, { op: 'irq_enter', cpu: 0 });
  ap(m, { op: 'kunmap_local', cpu: 0, addr: '0xfffbb000' });
  t.strictSame(diagIds(m), [], 'address matches the top slot: no warning at all');
  ap(m, { op: 'irq_exit', cpu: 0 });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 }, "the task's mapping is gone");
  t.strictSame(m.state().fixmap, []);
});

t.test('§3.2/§4 kunmap_atomic with a wrong address: W4, top popped, one atomic level undone', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  ap(m, { op: 'kmap_atomic', pid, page: H1 }); // 0xfffbb000
  ap(m, { op: 'kmap_atomic', pid, page: H2 }); // 0xfffba000
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 2, pc: 2, pf: 2 });
  ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffbb000' });
  t.strictSame(diagIds(m), ['W4']);
  t.strictSame(ptes(m), [[68, H1, 'PAGE_KERNEL']], 'H2 (top) torn down');
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 1, pf: 1 });
});

t.test('§2.1 DEBUG_HIGHMEM implies FORCE_MAP on x86: lowmem pages go through guard-spaced slots', async (t) => {
  const { m, pid } = bootWithTask(P32h(), 3);
  // CPU 3, debug: slot 1 = index 68 + 1 + 99 = 168 -> 0xfff57000
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: L1 }).result, { addr: '0xfff57000', slot: 1, fixIdx: 168 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 1, pc: 0, pf: 0 });
});

t.test('§2.4 PAE does not move the kmap slots (same FIX_KMAP_BEGIN / FIXADDR_TOP)', async (t) => {
  const { m, pid } = bootWithTask(P32({ config: { X86_PAE: true } }), 2);
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: H1 }).result, { addr: '0xfff9b000', slot: 0, fixIdx: 100 });
});

t.test('§5.3 an interrupt on an idle CPU maps at that CPU\'s slot 0', async (t) => {
  const m = createMachine(P32());
  ap(m, { op: 'irq_enter', cpu: 2 });
  const r = ap(m, { op: 'kmap_local_page', cpu: 2, page: H1 });
  t.strictSame(r.result, { addr: '0xfff9b000', slot: 0, fixIdx: 100 });
  t.equal(evs(r, 'kmap')[0]?.pid, null, 'interrupt context: pid null');
  ap(m, { op: 'kunmap_local', cpu: 2, addr: '0xfff9b000' });
  ap(m, { op: 'irq_exit', cpu: 2 });
  t.strictSame(m.state().fixmap, []);
  t.strictSame(diagIds(m), []);
});

t.test('contract §4: pfn given as a hex string', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  t.strictSame(ap(m, { op: 'kmap_local_pfn', pid, pfn: '0x100' }).result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
  t.strictSame(ptes(m), [[68, 0x100, 'PAGE_KERNEL']]);
});
