/**
 * The page and pfn APIs of include/linux/highmem-internal.h. A HIGHMEM kernel routes
 * them to the kmap_local core; a kernel without HIGHMEM (all of x86_64, x86_32 with
 * HIGHMEM=n) uses the inline versions that return the linear-map address and never touch
 * the fixmap, whatever DEBUG_KMAP_LOCAL_FORCE_MAP says (spec 2.5).
 */
import { hexAddr, type VAddr } from './addr.js'
import { directMap, kmapLocalPageProt, kmapLocalPfnProt, kunmapLocalIndexed, type MapResult } from './highmem.js'
import type { Kernel } from './kernel.js'
import { pagefaultDisable, pagefaultEnable, preemptDisable, preemptEnable } from './preempt.js'
import { migrateDisable, migrateEnable } from './sched.js'
import { KMAP_PROT, type Ctx, type Prot } from './task.js'

/** kmap_local_page() / kmap_local_page_prot(). */
export function kmapLocalPage(k: Kernel, ctx: Ctx, pfn: number, prot: Prot, api: string): MapResult {
  if (!k.layout.highmem) return directMap(k, ctx, pfn, api)
  return kmapLocalPageProt(k, ctx, pfn, prot, api)
}

/** kmap_local_pfn(): takes a slot even for a lowmem pfn on a HIGHMEM kernel. */
export function kmapLocalPfn(k: Kernel, ctx: Ctx, pfn: number, api: string): MapResult {
  if (!k.layout.highmem) return directMap(k, ctx, pfn, api)
  return kmapLocalPfnProt(k, ctx, pfn, KMAP_PROT, api)
}

/** kunmap_local(): on a kernel without HIGHMEM there is nothing to undo. */
export function kunmapLocal(k: Kernel, ctx: Ctx, va: VAddr, api: string): void {
  if (!k.layout.highmem) {
    k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kunmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api, addr: hexAddr(va.vpn), slot: null, fixIdx: null })
    return
  }
  kunmapLocalIndexed(k, ctx, va, api)
}

/**
 * The prefix of every kmap_atomic*(): preemption (or, on PREEMPT_RT since 5.15,
 * migration) and page faults off, on HIGHMEM and non-HIGHMEM kernels alike.
 */
export function atomicSectionEnter(k: Kernel, ctx: Ctx): void {
  if (k.layout.preemptRt && k.layout.behaviour.rtKmapAtomicMigrates) migrateDisable(k, ctx)
  else preemptDisable(ctx)
  pagefaultDisable(ctx)
}

/** The suffix of __kunmap_atomic(): undoes atomicSectionEnter; preempt_enable is a reschedule point. */
export function atomicSectionExit(k: Kernel, ctx: Ctx): void {
  pagefaultEnable(ctx)
  if (k.layout.preemptRt && k.layout.behaviour.rtKmapAtomicMigrates) migrateEnable(k, ctx)
  else preemptEnable(k, ctx)
}

/** kmap_atomic() / kmap_atomic_prot(). */
export function kmapAtomicProt(k: Kernel, ctx: Ctx, pfn: number, prot: Prot, api: string): MapResult {
  atomicSectionEnter(k, ctx)
  return kmapLocalPage(k, ctx, pfn, prot, api)
}

/** kmap_atomic_pfn(). */
export function kmapAtomicPfn(k: Kernel, ctx: Ctx, pfn: number, api: string): MapResult {
  atomicSectionEnter(k, ctx)
  return kmapLocalPfn(k, ctx, pfn, api)
}

/** kunmap_atomic(). */
export function kunmapAtomic(k: Kernel, ctx: Ctx, va: VAddr, api: string): void {
  kunmapLocal(k, ctx, va, api)
  atomicSectionExit(k, ctx)
}
