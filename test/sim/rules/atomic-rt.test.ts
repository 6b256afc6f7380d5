// Spec §3.2 counter table, §3.3 (no-HIGHMEM APIs), §3.4 / §11.1 PREEMPT_RT by version,
// §3.6 io-mapping on x86_64.
import t from 'tap';
import {
  P32,
  P32f,
  P64f,
  L1,
  L2,
  H1,
  ap,
  bootWithTask,
  spawn,
  createMachine,
  ctr,
  cpu,
  diagIds,
  diags,
  evs,
  ptes,
} from '../fixtures/helpers.js';

t.test('§3.2 counter table, HIGHMEM non-RT', async (t) => {
  const cases: [string, Record<string, unknown>, { kidx: number; mig: number; pc: number; pf: number }, string | null][] = [
    ['kmap_local_page highmem', { op: 'kmap_local_page', page: H1 }, { kidx: 1, mig: 1, pc: 0, pf: 0 }, '0xfffbb000'],
    ['kmap_atomic highmem', { op: 'kmap_atomic', page: H1 }, { kidx: 1, mig: 1, pc: 1, pf: 1 }, '0xfffbb000'],
    ['kmap_local_page lowmem', { op: 'kmap_local_page', page: L1 }, { kidx: 0, mig: 0, pc: 0, pf: 0 }, '0xc0100000'],
    ['kmap_atomic lowmem', { op: 'kmap_atomic', page: L1 }, { kidx: 0, mig: 0, pc: 1, pf: 1 }, '0xc0100000'],
    ['kmap_local_pfn lowmem pfn', { op: 'kmap_local_pfn', pfn: L1 }, { kidx: 1, mig: 1, pc: 0, pf: 0 }, '0xfffbb000'],
    ['kmap_atomic_pfn lowmem pfn', { op: 'kmap_atomic_pfn', pfn: L1 }, { kidx: 1, mig: 1, pc: 1, pf: 1 }, '0xfffbb000'],
    ['kmap_local_pfn highmem pfn', { op: 'kmap_local_pfn', pfn: H1 }, { kidx: 1, mig: 1, pc: 0, pf: 0 }, '0xfffbb000'],
  ];
  for (const [name, op, want, addr] of cases) {
    const { m, pid } = bootWithTask(P32(), 0);
    const r = ap(m, { ...op, pid });
    t.equal(r.result.addr, addr, `${name}: address`);
    t.strictSame(ctr(m, pid), want, `${name}: counters`);
    const unmap = String(op.op).includes('atomic') ? 'kunmap_atomic' : 'kunmap_local';
    ap(m, { op: unmap, pid, addr });
    t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 }, `${name}: ${unmap} undoes exactly`);
    t.strictSame(m.state().fixmap, [], `${name}: no PTE left`);
    t.strictSame(diagIds(m), [], `${name}: no diagnostic`);
  }
});

t.test('§3.2 FORCE_MAP lowmem: kmap_atomic (+1,+1,+1,+INCR) through a slot', async (t) => {
  const { m, pid } = bootWithTask(P32f(), 0);
  const r = ap(m, { op: 'kmap_atomic', pid, page: L1 });
  t.strictSame(r.result, { addr: '0xfffba000', slot: 1, fixIdx: 69 });
  t.strictSame(ctr(m, pid), { kidx: 2, mig: 1, pc: 1, pf: 1 });
  ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffba000' });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
});

t.test('§3.4 PREEMPT_RT 5.11.11: kmap_atomic still disables preemption (like non-RT)', async (t) => {
  const { m, pid } = bootWithTask(P32({ kernel: '5.11.11', config: { PREEMPT_RT: true } }), 0);
  ap(m, { op: 'kmap_atomic', pid, page: H1 });
  t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 1, pf: 1 });
  ap(m, { op: 'might_sleep', pid });
  t.strictSame(diagIds(m), ['S2'], 'atomic section: might_sleep splats');
  ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffbb000' });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
});

for (const kernel of ['5.15', '6.1']) {
  t.test(`§3.4 PREEMPT_RT ${kernel}: kmap_atomic = migrate_disable + pagefault_disable`, async (t) => {
    const cfg = () => P32({ kernel, config: { PREEMPT_RT: true } });
    t.test('highmem (0, +1, +2, +INCR)', async (t) => {
      const { m, pid } = bootWithTask(cfg(), 0);
      const r = ap(m, { op: 'kmap_atomic', pid, page: H1 });
      t.strictSame(r.result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
      t.strictSame(ctr(m, pid), { kidx: 1, mig: 2, pc: 0, pf: 1 });
      t.equal(cpu(m, 0).nrPinned, 1);
      ap(m, { op: 'might_sleep', pid });
      t.strictSame(diagIds(m), [], 'RT: not in_atomic, might_sleep quiet');
      ap(m, { op: 'kunmap_atomic', pid, addr: '0xfffbb000' });
      t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
      t.equal(cpu(m, 0).nrPinned, 0);
      t.strictSame(diagIds(m), []);
    });
    t.test('lowmem (0, +1, +1, 0)', async (t) => {
      const { m, pid } = bootWithTask(cfg(), 0);
      const r = ap(m, { op: 'kmap_atomic', pid, page: L1 });
      t.strictSame(r.result, { addr: '0xc0100000', slot: null, fixIdx: null });
      t.strictSame(ctr(m, pid), { kidx: 0, mig: 1, pc: 0, pf: 1 });
      t.equal(cpu(m, 0).nrPinned, 1, 'migrate_disable pins on SMP');
      ap(m, { op: 'kunmap_atomic', pid, addr: '0xc0100000' });
      t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
      t.equal(cpu(m, 0).nrPinned, 0);
    });
    t.test('kmap_atomic_pfn (0, +1, +2, +INCR)', async (t) => {
      const { m, pid } = bootWithTask(cfg(), 0);
      ap(m, { op: 'kmap_atomic_pfn', pid, pfn: L1 });
      t.strictSame(ctr(m, pid), { kidx: 1, mig: 2, pc: 0, pf: 1 });
    });
    t.test('kmap_local is the same on RT', async (t) => {
      const { m, pid } = bootWithTask(cfg(), 0);
      ap(m, { op: 'kmap_local_page', pid, page: H1 });
      t.strictSame(ctr(m, pid), { kidx: 1, mig: 1, pc: 0, pf: 0 });
    });
    t.test('RT kmap_atomic section is preemptible; the task stays on its CPU', async (t) => {
      const m = createMachine(cfg());
      const A = spawn(m, 'A', 1);
      const B = spawn(m, 'B', 1);
      ap(m, { op: 'kmap_atomic', pid: A, page: H1 });
      t.strictSame(ap(m, { op: 'preempt', cpu: 1 }).result, { switched: true });
      t.equal(cpu(m, 1).current, B);
      t.strictSame(cpu(m, 1).runqueue, [A]);
      t.strictSame(m.state().fixmap, []);
    });
  });
}

t.test('§3.4 non-RT kmap_atomic section is not preemptible: preempt sets need_resched, kunmap_atomic switches', async (t) => {
  const m = createMachine(P32());
  const A = spawn(m, 'A', 1);
  const B = spawn(m, 'B', 1);
  ap(m, { op: 'kmap_atomic', pid: A, page: H1 });
  const r = ap(m, { op: 'preempt', cpu: 1 });
  t.strictSame(r.result, { switched: false });
  t.equal(cpu(m, 1).current, A);
  t.equal(evs(r, 'sched_switch').length, 0);
  const u = ap(m, { op: 'kunmap_atomic', pid: A, addr: '0xfffab000' });
  t.equal(evs(u, 'sched_switch').length, 1, 'reschedule point when the count reaches 0');
  t.equal(cpu(m, 1).current, B);
  t.equal(diagIds(m).length, 0);
});

t.test('§3.3 x86_64 (no HIGHMEM): kmap_local_page of any page is direct, kmap_atomic pc/pf only', async (t) => {
  const { m, pid } = bootWithTask({ arch: 'x86_64', cpus: 4 }, 0);
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: H1 }).result, { addr: '0xffff888040000000', slot: null, fixIdx: null });
  t.strictSame(ap(m, { op: 'kmap_local_pfn', pid, pfn: L2 }).result, { addr: '0xffff888001234000', slot: null, fixIdx: null });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  ap(m, { op: 'kunmap_local', pid, addr: '0x08048000' });
  t.strictSame(diagIds(m), [], 'no-HIGHMEM kunmap_local does nothing at all (no W3)');
  ap(m, { op: 'kmap_atomic', pid, page: H1 });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 1, pf: 1 });
  t.strictSame(m.state().fixmap, []);
  const k = ap(m, { op: 'kmap', pid, page: H1 });
  t.strictSame(k.result, { addr: '0xffff888040000000' }, 'kmap on x86_64 is direct');
  t.strictSame(diagIds(m), ['S2'], 'kmap still runs might_sleep (inside kmap_atomic)');
});

t.test('§3.3/§3.4 x86_64 PREEMPT_RT 5.15: kmap_atomic = migrate_disable + pagefault_disable', async (t) => {
  const { m, pid } = bootWithTask({ arch: 'x86_64', cpus: 4, kernel: '5.15', config: { PREEMPT_RT: true } }, 0);
  const r = ap(m, { op: 'kmap_atomic', pid, page: L2 });
  t.strictSame(r.result, { addr: '0xffff888001234000', slot: null, fixIdx: null });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 1, pc: 0, pf: 1 });
  ap(m, { op: 'kunmap_atomic', pid, addr: '0xffff888001234000' });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
});

t.test('§3.6 io-mapping on x86_64: ioremap address + offset, no slot, no bounds check', async (t) => {
  const { m, pid } = bootWithTask({ arch: 'x86_64', cpus: 4 }, 0);
  const c = ap(m, { op: 'io_mapping_create', base: '0xe0000000', size: 0x1000000 });
  const mapping = c.result.mapping as number;
  const iomem = c.result.iomem as string;
  t.match(iomem, /^0x[0-9a-f]+$/, 'iomem is a hex address');
  t.ok(BigInt(iomem) >= 0xffffc90000000000n, 'ioremap address from 0xffffc90000000000 upward');
  const r = ap(m, { op: 'io_mapping_map_local_wc', pid, mapping, offset: 0x3010 });
  t.equal(r.result.addr, '0x' + (BigInt(iomem) + 0x3010n).toString(16), 'iomem + offset (low bits kept)');
  t.equal(r.result.slot, null);
  t.equal(r.result.fixIdx, null);
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  ap(m, { op: 'io_mapping_map_local_wc', pid, mapping, offset: 0x1000000 });
  t.equal(m.state().status, 'running', 'no B9 on the 64-bit path');
  t.strictSame(diags(m, 'B9'), []);
  ap(m, { op: 'io_mapping_map_atomic_wc', pid, mapping, offset: 0 });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 1, pf: 1 });
  ap(m, { op: 'io_mapping_unmap_atomic', pid, addr: iomem });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(m.state().fixmap, []);
});

t.test('§2.5 [U header mode] x86_64 FORCE_MAP: highmem-less kernel never takes a slot, even for kmap_local_pfn', async (t) => {
  const { m, pid } = bootWithTask(P64f(), 2);
  t.strictSame(ap(m, { op: 'kmap_local_pfn', pid, pfn: L2 }).result, { addr: '0xffff888001234000', slot: null, fixIdx: null });
  t.strictSame(ctr(m, pid), { kidx: 0, mig: 0, pc: 0, pf: 0 });
  t.strictSame(ptes(m), []);
});
