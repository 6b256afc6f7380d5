// The dashboard's slot grid, from the spec's numbers (sections 2.2 and 2.4), without a browser.
import t from 'tap'
import { createMachine } from '../../src/sim/index.js'
import { kmapGrid } from '../../web/kmap.js'

const layout = { pkmapBase: '0xff800000', highmemStartPfn: 0x38000 }

t.test('no debug: slots 0-14 usable, slot 15 reserved but never used', async (t) => {
  const m = createMachine({ arch: 'x86_32', cpus: 4, layout })
  m.apply({ op: 'spawn', name: 'T', cpu: 2 })
  m.apply({ op: 'kmap_local_page', pid: 1, page: 0x40000 })
  const cpu2 = kmapGrid(m.config, m.state())[2]
  t.equal(cpu2.slots.length, 16)
  t.strictSame(cpu2.slots[0], { slot: 0, fixIdx: 100, addr: '0xfff9b000', guard: false, neverUsed: false, live: { pfn: 0x40000, prot: 'PAGE_KERNEL', owner: { pid: 1, name: 'T' } } })
  t.strictSame(cpu2.slots.filter((s) => s.neverUsed).map((s) => s.slot), [15])
  t.strictSame(cpu2.slots.filter((s) => s.guard).length, 0)
})

t.test('DEBUG_KMAP_LOCAL: 33 slots, even ones are guards, none otherwise unused', async (t) => {
  const m = createMachine({ arch: 'x86_32', cpus: 4, layout, config: { DEBUG_KMAP_LOCAL: true } })
  const cpu2 = kmapGrid(m.config, m.state())[2]
  t.equal(cpu2.slots.length, 33)
  t.equal(cpu2.slots[1].addr, '0xfff78000')
  t.strictSame(cpu2.slots.filter((s) => s.guard).map((s) => s.slot), Array.from({ length: 17 }, (_, i) => 2 * i))
  t.strictSame(cpu2.slots.filter((s) => s.neverUsed), [])
})
