// Spec §2 (Kconfig, stack constants, fixmap formula, x86_32 / x86_64 numbers)
// and contract §2 / §8 / §9 (effective config, derived layout defaults, refusals).
import t from 'tap';
import {
  P32,
  P32d,
  P32f,
  P32h,
  P64f,
  H1,
  H2,
  H3,
  ap,
  createMachine,
  bootWithTask,
  expectConfigError,
} from '../fixtures/helpers.js';

t.test('§2.2/§2.4 P32 effective config (debug off): KM 16, INCR 1, END 131, window', async (t) => {
  const c = createMachine(P32()).config;
  t.equal(c.arch, 'x86_32');
  t.equal(c.cpus, 4);
  t.equal(c.kernel, '6.1');
  t.equal(c.config.HIGHMEM, true, 'x86_32 HIGHMEM defaults on');
  t.equal(c.config.X86_PAE, false);
  t.equal(c.config.DEBUG_KMAP_LOCAL, false);
  t.equal(c.config.DEBUG_KMAP_LOCAL_FORCE_MAP, false);
  t.equal(c.config.DEBUG_HIGHMEM, false);
  t.equal(c.config.PREEMPT_RT, false);
  t.equal(c.KM_MAX_IDX, 16);
  t.equal(c.KM_INCR, 1);
  t.equal(c.FIX_KMAP_BEGIN, 68);
  t.equal(c.FIX_KMAP_END, 131);
  t.equal(c.LAST_PKMAP, 1024);
  t.strictSame(c.kmapWindow, { start: '0xfff7c000', end: '0xfffbb000' });
  t.equal(c.layout.fixaddrTop, '0xfffff000');
  t.equal(c.layout.fixKmapBegin, 68);
  t.equal(c.layout.pageOffset, '0xc0000000');
  t.equal(c.layout.pkmapBase, '0xff800000', 'declared override kept');
  t.equal(c.layout.highmemStartPfn, 0x38000);
  t.equal(c.pkmapWindow?.start, '0xff800000');
});

t.test('[U contract: inclusive end of pkmapWindow is last page or last byte] pool window end', async (t) => {
  const c = createMachine(P32()).config;
  t.ok(['0xffbff000', '0xffbfffff'].includes(c.pkmapWindow?.end), `pkmapWindow.end ${c.pkmapWindow?.end}`);
});

t.test('§2.2 P32d: KM 33, INCR 2, END 199, window [0xfff38000, 0xfffbb000]', async (t) => {
  const c = createMachine(P32d()).config;
  t.equal(c.KM_MAX_IDX, 33);
  t.equal(c.KM_INCR, 2);
  t.equal(c.FIX_KMAP_BEGIN, 68);
  t.equal(c.FIX_KMAP_END, 199);
  t.strictSame(c.kmapWindow, { start: '0xfff38000', end: '0xfffbb000' });
  t.equal(c.config.DEBUG_KMAP_LOCAL_FORCE_MAP, false);
  t.equal(c.config.DEBUG_HIGHMEM, false);
});

t.test('§2.1 Kconfig selections: FORCE_MAP selects DEBUG_KMAP_LOCAL; DEBUG_HIGHMEM selects both', async (t) => {
  const f = createMachine(P32f()).config;
  t.equal(f.config.DEBUG_KMAP_LOCAL_FORCE_MAP, true);
  t.equal(f.config.DEBUG_KMAP_LOCAL, true, 'selected by FORCE_MAP');
  t.equal(f.config.DEBUG_HIGHMEM, false);
  t.equal(f.KM_MAX_IDX, 33);
  t.equal(f.FIX_KMAP_END, 199);
  const h = createMachine(P32h()).config;
  t.equal(h.config.DEBUG_HIGHMEM, true);
  t.equal(h.config.DEBUG_KMAP_LOCAL_FORCE_MAP, true, 'selected by DEBUG_HIGHMEM on x86');
  t.equal(h.config.DEBUG_KMAP_LOCAL, true, 'selected by DEBUG_HIGHMEM');
  t.equal(h.KM_INCR, 2);
  const k = createMachine({ arch: 'x86_32', cpus: 4 }).config;
  t.equal(k.kernel, '6.1', 'default kernel 6.1');
});

// Spec §2.4 address table, hard-coded from the spec (not recomputed).
const tableOff: Record<number, [string, number][]> = {
  0: [['0xfffbb000', 68], ['0xfffba000', 69], ['0xfffb9000', 70]],
  1: [['0xfffab000', 84], ['0xfffaa000', 85], ['0xfffa9000', 86]],
  2: [['0xfff9b000', 100], ['0xfff9a000', 101], ['0xfff99000', 102]],
  3: [['0xfff8b000', 116], ['0xfff8a000', 117], ['0xfff89000', 118]],
};
const tableOn: Record<number, [string, number][]> = {
  0: [['0xfffba000', 69], ['0xfffb8000', 71], ['0xfffb6000', 73]],
  1: [['0xfff99000', 102], ['0xfff97000', 104], ['0xfff95000', 106]],
  2: [['0xfff78000', 135], ['0xfff76000', 137], ['0xfff74000', 139]],
  3: [['0xfff57000', 168], ['0xfff55000', 170], ['0xfff53000', 172]],
};

t.test('§2.4 x86_32 address table, every CPU, debug off (slots 0/1/2) and on (slots 1/3/5)', async (t) => {
  for (const [label, cfg, table, slots] of [
    ['debug off', P32, tableOff, [0, 1, 2]],
    ['debug on', P32d, tableOn, [1, 3, 5]],
  ] as const) {
    for (let c = 0; c < 4; c++) {
      const { m, pid } = bootWithTask(cfg(), c);
      const got = [H1, H2, H3].map((page) => ap(m, { op: 'kmap_local_page', pid, page }).result);
      const want = (table[c] ?? []).map(([addr, fixIdx], i) => ({ addr, slot: slots[i], fixIdx }));
      t.strictSame(got, want, `${label}, CPU ${c}`);
      const fm = m.state().fixmap.map((f) => ({ fixIdx: f.fixIdx, cpu: f.cpu, slot: f.slot, addr: f.addr }));
      fm.sort((a, b) => a.fixIdx - b.fixIdx);
      t.strictSame(fm, want.map((w) => ({ fixIdx: w.fixIdx, cpu: c, slot: w.slot, addr: w.addr })), `${label}, CPU ${c} fixmap`);
    }
  }
});

t.test('contract §9 derived defaults: pkmapBase / highmemStartPfn / LAST_PKMAP', async (t) => {
  // [cpus, PAE, DEBUG_KMAP_LOCAL, pkmapBase, highmemStartPfn, LAST_PKMAP]
  const cases: [number, boolean, boolean, string, number, number][] = [
    [4, false, false, '0xff400000', 0x373fe, 1024], // contract table
    [4, false, true, '0xff400000', 0x373fe, 1024], // FIXADDR_TOT_START 0xffd36000 -> same base
    [4, true, false, '0xff600000', 0x375fe, 512], // contract table
    [4, true, true, '0xff600000', 0x375fe, 512], // btmap moves to 512 -> end 1025, same as no debug
    [1, false, false, '0xff400000', 0x373fe, 1024], // END 83, end-of-fixed 597
    [32, false, false, '0xfec00000', 0x36bfe, 1024], // END 579, btmaps pushed to 1024, end 1537
    [64, false, false, '0xfe400000', 0x363fe, 1024], // END 1091, end 1605
    [64, false, true, '0xfe000000', 0x35ffe, 1024], // END 2179, end 2693
    [64, true, false, '0xfe800000', 0x367fe, 512], // END 1091, btmaps at 1536, end 2049
  ];
  for (const [cpus, pae, dbg, base, hpfn, last] of cases) {
    const c = createMachine({ arch: 'x86_32', cpus, config: { X86_PAE: pae, DEBUG_KMAP_LOCAL: dbg } }).config;
    const name = `cpus ${cpus}${pae ? ' PAE' : ''}${dbg ? ' debug' : ''}`;
    t.equal(c.layout.pkmapBase, base, `${name}: pkmapBase`);
    t.equal(c.layout.highmemStartPfn, hpfn, `${name}: highmemStartPfn`);
    t.equal(c.LAST_PKMAP, last, `${name}: LAST_PKMAP`);
    t.equal(c.layout.fixKmapBegin, 68, `${name}: fixKmapBegin 68`);
    t.equal(c.layout.fixaddrTop, '0xfffff000');
    t.equal(c.layout.pageOffset, '0xc0000000');
  }
});

t.test('contract §9: FIX_KMAP_END 131 / 199 with and without PAE', async (t) => {
  for (const pae of [false, true]) {
    t.equal(createMachine({ arch: 'x86_32', cpus: 4, config: { X86_PAE: pae } }).config.FIX_KMAP_END, 131);
    t.equal(createMachine({ arch: 'x86_32', cpus: 4, config: { X86_PAE: pae, DEBUG_KMAP_LOCAL: true } }).config.FIX_KMAP_END, 199);
  }
});

t.test('contract §9: default-layout machine maps at the default highmem boundary', async (t) => {
  // highmemStartPfn 0x373fe: 0x373fd is lowmem (direct), 0x373fe is highmem (slot)
  const { m, pid } = bootWithTask({ arch: 'x86_32', cpus: 4 }, 0);
  const low = ap(m, { op: 'kmap_local_page', pid, page: 0x373fd }).result;
  t.strictSame(low, { addr: '0xf73fd000', slot: null, fixIdx: null }, 'direct(0x373fd) = 0xc0000000 + 0x373fd000');
  const high = ap(m, { op: 'kmap_local_page', pid, page: 0x373fe }).result;
  t.strictSame(high, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
});

t.test('§2.4 highmem boundary is the declared parameter (P32: pfn >= 0x38000)', async (t) => {
  const { m, pid } = bootWithTask(P32(), 0);
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: 0x37fff }).result, { addr: '0xf7fff000', slot: null, fixIdx: null });
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: 0x38000 }).result, { addr: '0xfffbb000', slot: 0, fixIdx: 68 });
});

t.test('contract §9: UP tinyconfig layout.fixKmapBegin 3 moves the kmap slots', async (t) => {
  const { m, pid } = bootWithTask({ arch: 'x86_32', cpus: 1, layout: { fixKmapBegin: 3, highmemStartPfn: 0x38000 } }, 0);
  t.equal(m.config.FIX_KMAP_BEGIN, 3);
  t.equal(m.config.FIX_KMAP_END, 18, '3 + 16*1 - 1');
  t.strictSame(m.config.kmapWindow, { start: '0xfffed000', end: '0xffffc000' });
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: H1 }).result, { addr: '0xffffc000', slot: 0, fixIdx: 3 });
});

t.test('§2.3 UP build window: END = 68 + 16 - 1 = 83', async (t) => {
  const c = createMachine(P32({ cpus: 1 })).config;
  t.equal(c.FIX_KMAP_END, 83);
  t.strictSame(c.kmapWindow, { start: '0xfffac000', end: '0xfffbb000' });
});

t.test('§2.3 window covers NR_CPUS CPUs: cpus 8 -> END 195 (0xfff3c000)', async (t) => {
  const c = createMachine(P32({ cpus: 8 })).config;
  t.equal(c.FIX_KMAP_END, 195);
  t.strictSame(c.kmapWindow, { start: '0xfff3c000', end: '0xfffbb000' });
  // CPU 7, slot 0: 68 + 112 = 180 -> 0xfffff000 - 0xb4000
  const { m, pid } = bootWithTask(P32({ cpus: 8 }), 7);
  t.strictSame(ap(m, { op: 'kmap_local_page', pid, page: H1 }).result, { addr: '0xfff4b000', slot: 0, fixIdx: 180 });
});

t.test('§2.5 x86_64 defaults without FORCE_MAP: no fixmap kmap range, no pool', async (t) => {
  const c = createMachine({ arch: 'x86_64', cpus: 4 }).config;
  t.equal(c.config.HIGHMEM, false, 'x86_64 has no HIGHMEM');
  t.equal(c.config.DEBUG_KMAP_LOCAL, false);
  t.equal(c.FIX_KMAP_BEGIN, null);
  t.equal(c.FIX_KMAP_END, null);
  t.equal(c.kmapWindow, null);
  t.equal(c.LAST_PKMAP, null);
  t.equal(c.pkmapWindow, null);
  t.equal(c.layout.fixaddrTop, '0xffffffffff7ff000');
  t.equal(c.layout.directMapBase, '0xffff888000000000');
});

t.test('§2.5 x86_64 FORCE_MAP addresses: END 774; CPU 2 first slot would be 0xffffffffff539000', async (t) => {
  const c = createMachine(P64f()).config;
  t.equal(c.FIX_KMAP_END, 774);
  t.strictSame(c.kmapWindow, { start: '0xffffffffff4f9000', end: '0xffffffffff57c000' });
  // 64 CPUs: END = 643 + 33*64 - 1 = 2754 -> 0xffffffffff7ff000 - 0xac2000
  const c64 = createMachine(P64f({ cpus: 64 })).config;
  t.equal(c64.FIX_KMAP_END, 2754);
  t.strictSame(c64.kmapWindow, { start: '0xfffffffffed3d000', end: '0xffffffffff57c000' });
});

t.test('config refusals (ConfigError with field and rule)', async (t) => {
  expectConfigError(t, { arch: 'x86_64', cpus: 4, config: { HIGHMEM: true } }, /HIGHMEM/, 'HIGHMEM on x86_64:');
  expectConfigError(t, { arch: 'x86_64', cpus: 4, config: { X86_PAE: true } }, /X86_PAE/, 'PAE on x86_64:');
  expectConfigError(t, { arch: 'x86_64', cpus: 4, config: { DEBUG_HIGHMEM: true } }, /HIGHMEM/, 'DEBUG_HIGHMEM on x86_64:');
  expectConfigError(t, { arch: 'x86_32', cpus: 4, config: { HIGHMEM: false, DEBUG_HIGHMEM: true } }, /HIGHMEM/, 'DEBUG_HIGHMEM without HIGHMEM:');
  expectConfigError(t, { arch: 'x86_32', cpus: 0 }, /cpus/, 'cpus 0:');
  expectConfigError(t, { arch: 'x86_32', cpus: 65 }, /cpus/, 'cpus 65:');
  expectConfigError(t, { arch: 'x86_32', cpus: 4, kernel: '5.16' }, /kernel/, 'kernel 5.16:');
  expectConfigError(t, { arch: 'x86_32', cpus: 4, kernel: '5.11' }, /kernel/, 'kernel 5.11:');
  expectConfigError(t, { arch: 'arm', cpus: 4 }, /arch/, 'arch arm:');
  expectConfigError(t, P32({ layout: { pkmapBase: '0xfff00000' } }), /pkmapBase/, 'pool over the kmap window:');
});

t.test('pkmapBase 0xff800000 overlap boundary: pool last page 0xffbff000 vs vaddr(FIX_KMAP_END)', async (t) => {
  // debug off: END = 67 + 16n; n=59 -> END 1011 -> 0xffc0c000 (ok); n=60 -> END 1027 -> 0xffbfc000 (overlap)
  t.doesNotThrow(() => createMachine(P32({ cpus: 59 })), '59 CPUs fit');
  expectConfigError(t, P32({ cpus: 60 }), /pkmapBase/, '60 CPUs:');
  // debug on: END = 67 + 33n; n=28 -> END 991 (ok); n=29 -> END 1024 -> 0xffbff000 == pool's last page
  t.doesNotThrow(() => createMachine(P32d({ cpus: 28 })), '28 CPUs fit with debug');
  expectConfigError(t, P32d({ cpus: 29 }), /pkmapBase/, '29 CPUs with debug (touching page):');
});

t.test('contract §8: default pkmapBase never overlaps, even at 64 CPUs with debug', async (t) => {
  t.doesNotThrow(() => createMachine({ arch: 'x86_32', cpus: 64, config: { DEBUG_KMAP_LOCAL: true } }));
  t.doesNotThrow(() => createMachine({ arch: 'x86_32', cpus: 64, config: { X86_PAE: true, DEBUG_HIGHMEM: true } }));
  t.doesNotThrow(() => createMachine(P64f({ cpus: 64 })));
});
