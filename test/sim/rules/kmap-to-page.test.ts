// Spec §3.7, §7.3, §8.8 and contract §8 (W10, W11): kmap_to_page by kernel version.
// virt_to_page(va) on x86_32 = (va - PAGE_OFFSET) >> 12.
import t from 'tap';
import { P32, H1, H2, L1, ap, createMachine, bootWithTask, spawn, diagIds, diags } from '../fixtures/helpers.js';

t.test('§8.8 5.18: local-kmap address -> virt_to_page, a wrong pfn, no warning', async (t) => {
  const { m, pid } = bootWithTask(P32({ kernel: '5.18' }), 2);
  ap(m, { op: 'kmap_local_page', pid, page: H1 }); // 0xfff9b000
  const r = ap(m, { op: 'kmap_to_page', pid, addr: '0xfff9b000' });
  t.strictSame(r.result, { pfn: 0x3ff9b }, '(0xfff9b000 - 0xc0000000) >> 12, not H1');
  t.strictSame(diagIds(m), []);
});

t.test('§8.8 6.1: local-kmap address -> W11 once, right pfn', async (t) => {
  const { m, pid } = bootWithTask(P32({ kernel: '6.1' }), 2);
  ap(m, { op: 'kmap_local_page', pid, page: H1 }); // 0xfff9b000
  ap(m, { op: 'kmap_local_page', pid, page: H2 }); // 0xfff9a000
  t.strictSame(ap(m, { op: 'kmap_to_page', pid, addr: '0xfff9b000' }).result, { pfn: H1 });
  t.strictSame(diagIds(m), ['W11']);
  t.equal(diags(m, 'W11')[0]?.kind, 'WARN');
  t.strictSame(ap(m, { op: 'kmap_to_page', pid, addr: '0xfff9a123' }).result, { pfn: H2 }, 'offset inside the page');
  t.strictSame(diagIds(m), ['W11'], 'once');
});

t.test('§8.8 pool address: 5.18 silent, 6.1 W10; both return the pool page', async (t) => {
  for (const [kernel, want] of [
    ['5.18', []],
    ['6.1', ['W10']],
  ] as const) {
    const { m, pid } = bootWithTask(P32({ kernel }), 0);
    ap(m, { op: 'kmap', pid, page: H2 }); // 0xff801000
    t.strictSame(ap(m, { op: 'kmap_to_page', pid, addr: '0xff801234' }).result, { pfn: H2 }, `${kernel}: pool page`);
    t.strictSame(diagIds(m), [...want], `${kernel}: diagnostics`);
    if (kernel === '6.1') t.equal(diags(m, 'W10')[0]?.kind, 'WARN');
  }
});

t.test('§8.8 [U candidate bug] 6.1: CPU 0 slot 0 (= vaddr(FIX_KMAP_BEGIN)) is outside the strict window test', async (t) => {
  const { m, pid } = bootWithTask(P32({ kernel: '6.1' }), 0);
  ap(m, { op: 'kmap_local_page', pid, page: H1 }); // 0xfffbb000, CPU 0 slot 0
  ap(m, { op: 'kmap_local_page', pid, page: H2 }); // 0xfffba000, CPU 0 slot 1
  t.strictSame(ap(m, { op: 'kmap_to_page', pid, addr: '0xfffbb000' }).result, { pfn: 0x3ffbb }, 'virt_to_page fallback');
  t.strictSame(diagIds(m), [], 'not recognised as local: no W11');
  t.strictSame(ap(m, { op: 'kmap_to_page', pid, addr: '0xfffba000' }).result, { pfn: H2 }, 'slot 1 is recognised');
  t.strictSame(diagIds(m), ['W11']);
});

t.test('§8.8 6.1: window address with no matching kpte -> W11, then virt_to_page', async (t) => {
  const m = createMachine(P32({ kernel: '6.1' }));
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  ap(m, { op: 'kmap_local_page', pid: A, page: H1 }); // 0xfffab000
  ap(m, { op: 'preempt', cpu: 1 });
  t.strictSame(ap(m, { op: 'kmap_to_page', pid: B, addr: '0xfffab000' }).result, { pfn: 0x3ffab }, "B's own kpte has no match");
  t.strictSame(diagIds(m), ['W11']);
});

t.test('§7.3 lowmem direct address -> its pfn, no warning (5.18 and 6.1)', async (t) => {
  for (const kernel of ['5.18', '6.1']) {
    const { m, pid } = bootWithTask(P32({ kernel }), 0);
    t.strictSame(ap(m, { op: 'kmap_to_page', pid, addr: '0xc0100000' }).result, { pfn: L1 });
    t.strictSame(diagIds(m), []);
  }
});

t.test('contract §8: W10 is a once-only site, separate from W11', async (t) => {
  const { m, pid } = bootWithTask(P32({ kernel: '6.1' }), 1);
  ap(m, { op: 'kmap', pid, page: H1 }); // 0xff801000
  ap(m, { op: 'kmap_local_page', pid, page: H2 }); // 0xfffab000
  ap(m, { op: 'kmap_to_page', pid, addr: '0xff801000' });
  ap(m, { op: 'kmap_to_page', pid, addr: '0xff801000' });
  t.strictSame(diagIds(m), ['W10']);
  ap(m, { op: 'kmap_to_page', pid, addr: '0xfffab000' });
  ap(m, { op: 'kmap_to_page', pid, addr: '0xfffab000' });
  t.strictSame(diagIds(m), ['W10', 'W11']);
});
