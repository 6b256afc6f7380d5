// An interrupt on a CPU running its idle task maps on the idle task's stack (current is
// swapper/N): the state must show who owns that slot (spec 5.3, contract section 6).
import t from 'tap'
import { createMachine } from '../../../src/sim/index.js'

const P32 = { arch: 'x86_32', cpus: 4, layout: { pkmapBase: '0xff800000', highmemStartPfn: 0x38000 } }

t.test('interrupt on an idle CPU: the slot belongs to swapper/N', async (t) => {
  const m = createMachine(P32)
  m.apply({ op: 'irq_enter', cpu: 3 })
  // CPU 3 slot 0: FIX_KMAP_BEGIN 68 + 16*3 = 116 -> 0xfffff000 - 116*0x1000 = 0xfff8b000
  t.strictSame(m.apply({ op: 'kmap_local_page', cpu: 3, page: 0x40000 }).result, { addr: '0xfff8b000', slot: 0, fixIdx: 116 })
  const idle = m.state().cpus[3]!.idle
  t.equal(idle.name, 'swapper/3')
  t.equal(idle.kmapIdx, 1)
  t.strictSame(idle.kpte, [{ slot: 0, pfn: 0x40000, prot: 'PAGE_KERNEL' }])
  t.equal(idle.migrationDisabled, 1, "the interrupt's migrate_disable acts on current, the idle task")
  t.equal(m.state().cpus[3]!.nrPinned, 1)
  m.apply({ op: 'kunmap_local', cpu: 3, addr: '0xfff8b000' })
  m.apply({ op: 'irq_exit', cpu: 3 })
  const after = m.state().cpus[3]!
  t.strictSame([after.idle.kmapIdx, after.idle.kpte, after.nrPinned], [0, [], 0])
})
