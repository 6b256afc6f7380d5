/**
 * The generic kmap_local core of mm/highmem.c (CONFIG_KMAP_LOCAL): the per-task slot
 * stack, mapping a pfn into this CPU's fixmap slot, unmapping the top slot, and the
 * context-switch hooks that take a task's mappings out of the page tables and put them back.
 */
import { hexAddr, type VAddr } from './addr.js'
import { COST_NS } from './cost.js'
import { bug, debugLocksWarn, warnOnce } from './diag.js'
import type { Kernel } from './kernel.js'
import { inHardirq, irqsDisabled, preemptDisable, preemptEnable } from './preempt.js'
import { migrateDisable, migrateEnable } from './sched.js'
import type { Cpu, Ctx, Prot, Pte, Task } from './task.js'

export type MapResult = {
  addr: string
  slot: number | null
  fixIdx: number | null
}

/** kmap_local_calc_idx() / arch_kmap_local_map_idx(): the fixmap index of a slot on a CPU. */
export function kmapLocalCalcIdx(k: Kernel, slot: number, cpu: number): number {
  return k.layout.FIX_KMAP_BEGIN! + slot + k.layout.KM_MAX_IDX * cpu
}

// ---------------------------------------------------------------- page-table helpers

function setFixPte(k: Kernel, ctx: Ctx, idx: number, pte: Pte): void {
  k.fixmap[idx] = pte
  k.record(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'pte_set', cpu: ctx.cpu.id, pid: ctx.task.pid, fixIdx: idx, addr: k.fixAddr(idx), pfn: pte.pfn })
  k.advance(COST_NS.PTE_WRITE)
}

function clearFixPte(k: Kernel, ctx: Ctx, idx: number): void {
  // A stray clear below FIX_KMAP_BEGIN (B2 path on CPU 0 with BEGIN = 0) hits no tracked entry.
  if (idx < 0) return
  const old = k.fixmap[idx] ?? null
  k.fixmap[idx] = null
  k.record(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'pte_clear', cpu: ctx.cpu.id, pid: ctx.task.pid, fixIdx: idx, addr: k.fixAddr(idx), pfn: old?.pfn ?? null })
  k.advance(COST_NS.PTE_WRITE)
}

/** flush_tlb_one_kernel(): invlpg of one page on this CPU. */
export function flushTlbOne(k: Kernel, ctx: Ctx, vpn: number): void {
  // Map.delete is a call even on an empty map, and most unmaps find this CPU's TLB empty.
  const tlb = ctx.cpu.tlb
  if (tlb.size !== 0) tlb.delete(vpn)
  const addr = k.fixmapWindowAddr(vpn) ?? hexAddr(vpn)
  k.record(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'tlb_flush', cpu: ctx.cpu.id, pid: ctx.task.pid, scope: 'local', addr })
  k.advance(COST_NS.TLB_FLUSH_ONE)
}

// ---------------------------------------------------------------- the slot stack

/** kmap_local_idx_push(): takes the next slot of current's stack. */
function kmapLocalIdxPush(k: Kernel, ctx: Ctx): number {
  if (inHardirq(ctx) && !irqsDisabled(ctx)) warnOnce(k, ctx, 'W1', 'kmap_local from hard interrupt context with interrupts enabled')
  const kc = ctx.task.kmapCtrl
  kc.idx += k.layout.KM_INCR
  if (kc.idx >= k.layout.KM_MAX_IDX)
    bug(k, ctx, 'B1', `kmap_ctrl.idx ${kc.idx} >= KM_MAX_IDX ${k.layout.KM_MAX_IDX}: too many nested local kmaps`)
  return kc.idx - 1
}

/** kmap_local_idx_pop(). */
function kmapLocalIdxPop(k: Kernel, ctx: Ctx): void {
  const kc = ctx.task.kmapCtrl
  kc.idx -= k.layout.KM_INCR
  if (kc.idx < 0) bug(k, ctx, 'B2', `kmap_ctrl.idx ${kc.idx} < 0: unmap without a mapping`)
}

// ---------------------------------------------------------------- map and unmap

/**
 * __kmap_local_pfn_prot(): pins the task to this CPU, takes a slot, writes the PTE and
 * saves it in the task so the switch hooks can restore it. No TLB flush on x86: the slot
 * was flushed when it was last unmapped.
 */
export function kmapLocalPfnProt(k: Kernel, ctx: Ctx, pfn: number, prot: Prot, api: string): MapResult {
  migrateDisable(k, ctx)
  preemptDisable(ctx)
  const slot = kmapLocalIdxPush(k, ctx)
  const idx = kmapLocalCalcIdx(k, slot, ctx.cpu.id)
  if (k.fixmap[idx] !== null)
    bug(k, ctx, 'B3', `fixmap index ${idx} (${k.fixAddr(idx)}) is already mapped (pfn ${hexAddr(0, k.fixmap[idx]!.pfn)})`)
  const addr = k.fixAddr(idx)
  k.record(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api, addr, pfn, slot, fixIdx: idx })
  const pte: Pte = { pfn, prot }
  setFixPte(k, ctx, idx, pte)
  ctx.task.kmapCtrl.pteval[slot] = pte
  preemptEnable(k, ctx)
  return { addr, slot, fixIdx: idx }
}

/** Whether a page lives in highmem (PageHighMem). */
export function isHighmemPfn(k: Kernel, pfn: number): boolean {
  return k.layout.highmem && pfn >= k.layout.highmemStartPfn
}

/** page_address() of a lowmem page: its place in the linear map. */
export function directMap(k: Kernel, ctx: Ctx, pfn: number, api: string): MapResult {
  const addr = hexAddr(k.layout.directMapVpn + pfn)
  k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api, addr, pfn, slot: null, fixIdx: null })
  return { addr, slot: null, fixIdx: null }
}

/** __kmap_local_page_prot(): lowmem pages need no slot unless FORCE_MAP wants one. */
export function kmapLocalPageProt(k: Kernel, ctx: Ctx, pfn: number, prot: Prot, api: string): MapResult {
  if (!k.layout.forceMap && !isHighmemPfn(k, pfn)) return directMap(k, ctx, pfn, api)
  return kmapLocalPfnProt(k, ctx, pfn, prot, api)
}

/**
 * kunmap_local_indexed(): always tears down the TOP slot of current's stack, whatever
 * address it was given; a different address only earns a once-only warning. The TLB
 * flush goes to the address given.
 */
export function kunmapLocalIndexed(k: Kernel, ctx: Ctx, va: VAddr, api: string): void {
  const l = k.layout
  const vpn = va.vpn // addr & PAGE_MASK: any address inside the page works
  const lo = k.fixToVpn(l.FIX_KMAP_END!)
  const hi = k.fixToVpn(l.FIX_KMAP_BEGIN!)
  if (vpn < lo || vpn > hi) {
    k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kunmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api, addr: hexAddr(vpn), slot: null, fixIdx: null })
    if (l.forceMap) warnOnce(k, ctx, 'W2', `${hexAddr(vpn)} is outside the kmap window (FORCE_MAP): nothing unmapped`)
    else if (vpn < l.directMapVpn) warnOnce(k, ctx, 'W3', `${hexAddr(vpn)} is a user address`)
    return
  }
  preemptDisable(ctx)
  const kc = ctx.task.kmapCtrl
  const slot = kc.idx - 1
  const idx = kmapLocalCalcIdx(k, slot, ctx.cpu.id)
  k.record(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kunmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api, addr: k.fixAddr(l.fixaddrTopVpn - vpn), slot, fixIdx: idx })
  if (vpn !== k.fixToVpn(idx))
    warnOnce(k, ctx, 'W4', `unmapping ${hexAddr(vpn)} but the top slot ${slot} is at ${k.fixAddr(idx)}`)
  clearFixPte(k, ctx, idx)
  flushTlbOne(k, ctx, vpn)
  // pteval[-1] on an empty stack is an out-of-bounds write in the kernel; B2 follows.
  if (slot >= 0) kc.pteval[slot] = null
  kmapLocalIdxPop(k, ctx)
  preemptEnable(k, ctx)
  migrateEnable(k, ctx)
}

// ---------------------------------------------------------------- context switch hooks

/** Guard slot test of the switch hooks; 5.11.0-5.11.10 keyed it on the wrong option. */
function isGuardSlot(k: Kernel, i: number): boolean {
  const l = k.layout
  const guardMode = l.behaviour.guardKeyedOnDebugHighmem ? l.debugHighmem : l.debugKmapLocal
  return guardMode && (i & 1) === 0
}

/** The slots a hook will touch: non-guard slots with a saved PTE. */
function liveSlots(k: Kernel, t: Task): number[] {
  const slots: number[] = []
  for (let i = 0; i < t.kmapCtrl.idx; i++) if (!isGuardSlot(k, i) && t.kmapCtrl.pteval[i] !== null) slots.push(i)
  return slots
}

/**
 * The loop both switch hooks share: every slot below kmap_ctrl.idx, skipping guard slots
 * (warning if one holds a PTE; pte_none() and "raw value != 0" agree on x86) and empty
 * slots (warning: the stack and the saved PTEs disagree), handing each live one to `fn`.
 */
function forEachSavedSlot(
  k: Kernel,
  ctx: Ctx,
  ids: { guard: 'W5' | 'W7'; empty: 'W6' | 'W8' },
  fn: (slot: number, pte: Pte) => void,
): void {
  const kc = ctx.task.kmapCtrl
  for (let i = 0; i < kc.idx; i++) {
    const pte = kc.pteval[i] ?? null
    if (isGuardSlot(k, i)) {
      if (pte !== null) warnOnce(k, ctx, ids.guard, `guard slot ${i} holds a PTE`)
    } else if (pte === null) {
      warnOnce(k, ctx, ids.empty, `slot ${i} has no saved PTE`)
    } else {
      fn(i, pte)
    }
  }
}

/**
 * __kmap_local_sched_out(): clears the outgoing task's PTEs with a local flush each. It
 * never touches kmap_ctrl.idx, so an interrupt arriving meanwhile maps above the task's
 * slots and unmaps before returning.
 */
export function kmapLocalSchedOut(k: Kernel, cpu: Cpu, t: Task): void {
  const ctx: Ctx = { cpu, task: t, frame: null }
  k.push({ seq: k.nextSeq(), ts: k.ts, type: 'kmap_sched_out', cpu: cpu.id, pid: t.pid, slots: liveSlots(k, t) })
  forEachSavedSlot(k, ctx, { guard: 'W5', empty: 'W6' }, (slot) => {
    const idx = kmapLocalCalcIdx(k, slot, cpu.id)
    clearFixPte(k, ctx, idx)
    flushTlbOne(k, ctx, k.fixToVpn(idx))
  })
}

/** __kmap_local_sched_in(): rewrites the incoming task's PTEs from kmap_ctrl.pteval. */
export function kmapLocalSchedIn(k: Kernel, cpu: Cpu, t: Task): void {
  const ctx: Ctx = { cpu, task: t, frame: null }
  k.push({ seq: k.nextSeq(), ts: k.ts, type: 'kmap_sched_in', cpu: cpu.id, pid: t.pid, slots: liveSlots(k, t) })
  forEachSavedSlot(k, ctx, { guard: 'W7', empty: 'W8' }, (slot, pte) => setFixPte(k, ctx, kmapLocalCalcIdx(k, slot, cpu.id), pte))
}

// ---------------------------------------------------------------- task life

/** kmap_local_fork(): a child never inherits local kmaps; forking while holding one warns. */
export function kmapLocalFork(k: Kernel, parent: Ctx): void {
  if (parent.task.kmapCtrl.idx !== 0)
    warnOnce(k, parent, 'W9', `fork with ${parent.task.kmapCtrl.idx} local kmap slots held; the child's kmap_ctrl is zeroed`)
}

/** kmap_assert_nomap() on return to user space. */
export function kmapAssertNomap(k: Kernel, ctx: Ctx): void {
  if (ctx.task.kmapCtrl.idx !== 0) debugLocksWarn(k, ctx, 'D1', 'current->kmap_ctrl.idx')
}
