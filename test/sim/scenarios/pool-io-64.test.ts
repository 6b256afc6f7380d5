// Spec section 10, worked scenarios T26, T29 (persistent pool), T30 (io-mapping),
// T31 (x86_64 FORCE_MAP), T38 (x86_32 without HIGHMEM).
import t from 'tap';
import {
  P32,
  P64f,
  L1,
  L2,
  H,
  H1,
  ap,
  run,
  bootWithTask,
  cpu,
  ctr,
  ptes,
  diagIds,
  diags,
  evs,
  kernelView,
  expectHalted,
} from '../fixtures/helpers.js';

t.test('T26 persistent pool BUGs (P32)', async (t) => {
  t.test('1. kunmap(H5) never mapped -> B6', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    const out = ap(m, { op: 'kunmap', pid, page: H(5) });
    expectHalted(t, m, out, 'B6');
  });
  t.test('2. kmap(H1), kunmap(H1), kunmap(H1) -> B7', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    const r = ap(m, { op: 'kmap', pid, page: H1 });
    t.strictSame(r.result, { addr: '0xff801000' }, 'first pool slot handed out is 1');
    t.strictSame(m.state().pkmap?.slots, [{ nr: 1, addr: '0xff801000', pfn: H1, count: 2 }]);
    ap(m, { op: 'kunmap', pid, page: H1 });
    t.strictSame(m.state().pkmap?.slots, [{ nr: 1, addr: '0xff801000', pfn: H1, count: 1 }]);
    t.equal(m.state().status, 'running');
    const out = ap(m, { op: 'kunmap', pid, page: H1 });
    expectHalted(t, m, out, 'B7');
  });
});

t.test('T29 kmap() inside kmap_atomic vs inside kmap_local (P32, CPU 0)', async (t) => {
  t.test('inside kmap_atomic: S2 even for a lowmem page', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'kmap_atomic', pid, page: H1 });
    const r = ap(m, { op: 'kmap', pid, page: L1 });
    t.strictSame(r.result, { addr: '0xc0100000' });
    t.strictSame(diagIds(m), ['S2']);
    t.equal(diags(m, 'S2')[0]?.kind, 'SCHED');
    t.strictSame(m.state().pkmap?.slots, [], 'lowmem kmap does not use the pool');
  });
  t.test('inside kmap_local: no diagnostic', async (t) => {
    const { m, pid } = bootWithTask(P32(), 0);
    ap(m, { op: 'kmap_local_page', pid, page: H1 });
    const r = ap(m, { op: 'kmap', pid, page: L1 });
    t.strictSame(r.result, { addr: '0xc0100000' });
    t.strictSame(diagIds(m), []);
  });
});

t.test('T30 io-mapping on x86_32 (P32, CPU 0)', async (t) => {
  const setup = () => {
    const { m, pid } = bootWithTask(P32(), 0);
    const c = ap(m, { op: 'io_mapping_create', base: '0xe0000000', size: 0x1000000 });
    t.equal(typeof c.result.mapping, 'number', 'mapping id is an integer');
    t.ok(Number.isInteger(c.result.mapping));
    return { m, pid, mapping: c.result.mapping as number };
  };
  t.test('steps 1-3', async (t) => {
    const { m, pid, mapping } = setup();
    const r1 = ap(m, { op: 'io_mapping_map_local_wc', pid, mapping, offset: 0x3010 });
    t.strictSame(r1.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 }, 'page start; the 0x010 is dropped');
    t.strictSame(ptes(m), [[68, 0xe0003, 'PAGE_KERNEL_WC']]);
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });

    ap(m, { op: 'io_mapping_unmap_local', pid, addr: '0xfffbb000' });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(m.state().fixmap, []);

    const r3 = ap(m, { op: 'io_mapping_map_atomic_wc', pid, mapping, offset: 0 });
    t.strictSame(r3.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 1, pf: 1 });
    t.strictSame(ptes(m), [[68, 0xe0000, 'PAGE_KERNEL_WC']]);
    ap(m, { op: 'io_mapping_unmap_atomic', pid, addr: '0xfffbb000' });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(m.state().fixmap, []);
    t.strictSame(diagIds(m), []);
  });
  t.test('step 4: offset == size -> B9', async (t) => {
    const { m, pid, mapping } = setup();
    const out = ap(m, { op: 'io_mapping_map_local_wc', pid, mapping, offset: 0x1000000 });
    expectHalted(t, m, out, 'B9');
  });
  t.test('last page of the mapping is fine (offset size-1)', async (t) => {
    const { m, pid, mapping } = setup();
    const r = ap(m, { op: 'io_mapping_map_local_wc', pid, mapping, offset: 0xffffff });
    t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
    t.strictSame(ptes(m), [[68, 0xe0fff, 'PAGE_KERNEL_WC']]);
    t.equal(m.state().status, 'running');
  });
  t.test('B9 for map_atomic too', async (t) => {
    const { m, pid, mapping } = setup();
    const out = ap(m, { op: 'io_mapping_map_atomic_wc', pid, mapping, offset: 0x1000000 });
    expectHalted(t, m, out, 'B9');
  });
});

t.test('T31 x86_64 with FORCE_MAP (P64f, CPU 0) [U §2.5: header mode, forceMapAppliesWithoutHighmem=false]', async (t) => {
  t.test('layout', async (t) => {
    const { m } = bootWithTask(P64f(), 0);
    const c = m.config;
    t.equal(c.FIX_KMAP_BEGIN, 643);
    t.equal(c.FIX_KMAP_END, 774);
    t.equal(c.KM_MAX_IDX, 33);
    t.equal(c.KM_INCR, 2);
    t.strictSame(c.kmapWindow, { start: '0xffffffffff4f9000', end: '0xffffffffff57c000' });
    t.equal(c.layout.fixaddrTop, '0xffffffffff7ff000');
    t.equal(c.layout.fixKmapBegin, 643);
    t.equal(c.layout.directMapBase, '0xffff888000000000');
    t.equal(c.config.DEBUG_KMAP_LOCAL, true, 'FORCE_MAP selects DEBUG_KMAP_LOCAL');
    t.equal(c.config.HIGHMEM, false);
    t.equal(c.LAST_PKMAP, null, 'no pool without HIGHMEM');
    t.equal(c.pkmapWindow, null);
  });
  t.test('kmap_local_page(L2) -> direct map', async (t) => {
    const { m, pid } = bootWithTask(P64f(), 0);
    const r = ap(m, { op: 'kmap_local_page', pid, page: L2 });
    t.strictSame(r.result, { addr: '0xffff888001234000', slot: null, fixIdx: null });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(m.state().fixmap, []);
  });
  t.test('kmap_atomic(L2) -> same address, pc 1 pf 1 mig 0', async (t) => {
    const { m, pid } = bootWithTask(P64f(), 0);
    const r = ap(m, { op: 'kmap_atomic', pid, page: L2 });
    t.strictSame(r.result, { addr: '0xffff888001234000', slot: null, fixIdx: null });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 1, pf: 1 });
    ap(m, { op: 'kunmap_atomic', pid, addr: '0xffff888001234000' });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
    t.strictSame(diagIds(m), []);
  });
});

t.test('T38 x86_32 without HIGHMEM (P32 with HIGHMEM=n, CPU 0)', async (t) => {
  // P32 with HIGHMEM=n. The preset's pool/highmem layout overrides have no meaning without
  // HIGHMEM (the model refuses a pkmapBase there), so they are left out: nothing below uses them.
  const cfg = () => ({ arch: 'x86_32', cpus: 4, kernel: '6.1', config: { HIGHMEM: false } });
  t.test('effective config keeps KMAP_LOCAL, drops the pool', async (t) => {
    const { m } = bootWithTask(cfg(), 0);
    t.equal(m.config.config.HIGHMEM, false);
    t.equal(m.config.FIX_KMAP_BEGIN, 68);
    t.equal(m.config.FIX_KMAP_END, 131);
    t.equal(m.config.KM_MAX_IDX, 16);
    t.equal(m.config.LAST_PKMAP, null);
    t.equal(m.config.pkmapWindow, null);
  });
  t.test('1. kmap_local_page(L1) -> direct, nothing changes', async (t) => {
    const { m, pid } = bootWithTask(cfg(), 0);
    const before = kernelView(m);
    const r = ap(m, { op: 'kmap_local_page', pid, page: L1 });
    t.strictSame(r.result, { addr: '0xc0100000', slot: null, fixIdx: null });
    t.equal(kernelView(m), before);
    ap(m, { op: 'kunmap_local', pid, addr: '0xc0100000' });
    t.equal(kernelView(m), before);
  });
  t.test('2. kmap_atomic(L1) -> pc 1 pf 1 mig 0', async (t) => {
    const { m, pid } = bootWithTask(cfg(), 0);
    const r = ap(m, { op: 'kmap_atomic', pid, page: L1 });
    t.strictSame(r.result, { addr: '0xc0100000', slot: null, fixIdx: null });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 1, pf: 1 });
  });
  t.test('3. io_mapping_map_local_wc(m, 0) still uses the fixmap', async (t) => {
    const { m, pid } = bootWithTask(cfg(), 0);
    const out = run(m, [
      { op: 'io_mapping_create', base: '0xe0000000', size: 0x1000000 },
    ]);
    const mapping = out[0]?.result.mapping as number;
    const r = ap(m, { op: 'io_mapping_map_local_wc', pid, mapping, offset: 0 });
    t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
    t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
    t.strictSame(ptes(m), [[68, 0xe0000, 'PAGE_KERNEL_WC']]);
    t.equal(cpu(m, 0).nrPinned, 1);
    t.equal(evs(r, 'pte_set').length, 1);
  });
});
