/**
 * Using a mapping: a kernel load or store through this CPU's TLB and page tables, a user
 * copy that may fault, and kmap_to_page(). Through these a user sees what a stale TLB entry,
 * a switched-out task's address or a disabled fault handler really do.
 */
import { hexAddr, type VAddr } from './addr.js'
import { COST_NS } from './cost.js'
import { warnOnce } from './diag.js'
import { kmapLocalCalcIdx } from './highmem.js'
import type { Kernel } from './kernel.js'
import { faulthandlerDisabled, mightSleep } from './preempt.js'
import type { Ctx, Pte } from './task.js'

export type AccessResult = { pfn: number; prot: string } | { fault: true; reason: string }

/** Page-table walk for a kernel address; `cache` says whether the TLB may keep the entry. */
function walk(k: Kernel, vpn: number): { pte: Pte; cache: boolean } | null {
  const l = k.layout
  if (l.FIX_KMAP_BEGIN !== null) {
    const idx = l.fixaddrTopVpn - vpn
    if (idx >= l.FIX_KMAP_BEGIN && idx <= l.FIX_KMAP_END!) {
      const pte = k.fixmap[idx] ?? null
      return pte === null ? null : { pte, cache: true }
    }
  }
  if (k.pool !== null) {
    const nr = vpn - l.pkmapBaseVpn!
    if (nr >= 0 && nr < k.pool.count.length) {
      const pte = k.pool.pte[nr] ?? null
      return pte === null ? null : { pte, cache: true }
    }
  }
  const pfn = vpn - l.directMapVpn
  const lowmemEnd = l.arch === 'x86_32' ? l.highmemStartPfn : l.maxPfn
  if (pfn >= 0 && pfn < lowmemEnd) return { pte: { pfn, prot: 'PAGE_KERNEL' }, cache: false }
  for (const m of k.ioMappings.values()) {
    if (m.iomemVpn === null) continue
    const page = vpn - m.iomemVpn
    if (page >= 0 && page * 4096 < m.iomemOff + m.size)
      return { pte: { pfn: Math.floor(m.base / 4096) + page, prot: 'PAGE_KERNEL_WC' }, cache: false }
  }
  return null
}

/**
 * A load or store at `va`. The TLB is consulted first, as the hardware does: an entry left
 * behind by a flush of the wrong address (W4) still translates after its PTE is gone.
 */
export function access(k: Kernel, ctx: Ctx, va: VAddr, write: boolean): AccessResult {
  const tlb = ctx.cpu.tlb
  let pte = tlb.get(va.vpn) ?? null
  if (pte === null) {
    const w = walk(k, va.vpn)
    if (w !== null) {
      pte = w.pte
      if (w.cache) tlb.set(va.vpn, pte)
    }
  }
  // The address is formatted only for a fault: most accesses succeed.
  if (pte === null) return fault(k, ctx, hexAddr(va.vpn, va.off), 'not present: unable to handle kernel paging request (a real kernel oopses)')
  if (write && pte.prot === 'PAGE_KERNEL_RO') return fault(k, ctx, hexAddr(va.vpn, va.off), 'write to a read-only mapping (a real kernel oopses)')
  return { pfn: pte.pfn, prot: pte.prot }
}

function fault(k: Kernel, ctx: Ctx, addr: string | null, reason: string): { fault: true; reason: string } {
  k.emitCtx(ctx, 'fault', { addr, reason })
  return { fault: true, reason }
}

/**
 * copy_to_user() of `bytes` to a user buffer whose page is present or not. might_fault()
 * checks for sleeping only while page faults are enabled; a missing page is faulted in
 * unless the fault handler is disabled (pagefault_disable or atomic context), in which
 * case nothing is copied and the caller must fall back (the crash-dump bounce buffer).
 */
export function copyToUser(k: Kernel, ctx: Ctx, bytes: number, userPresent: boolean): { notCopied: number } {
  if (ctx.task.pagefaultDisabled === 0) mightSleep(k, ctx, 'mm/memory.c:__might_fault')
  if (userPresent || bytes === 0) return { notCopied: 0 }
  if (faulthandlerDisabled(k, ctx)) {
    fault(k, ctx, null, 'user page not present; fault handler disabled: no fixup, copy stops short')
    return { notCopied: bytes }
  }
  fault(k, ctx, null, 'user page not present: faulted in (may sleep)')
  k.advance(COST_NS.FAULT)
  return { notCopied: 0 }
}

/** virt_to_page(): the linear-map arithmetic, right only for lowmem addresses. */
function virtToPfn(k: Kernel, vpn: number): number {
  const pfn = vpn - k.layout.directMapVpn
  const span = k.layout.arch === 'x86_32' ? 2 ** 20 : 2 ** 52
  return ((pfn % span) + span) % span
}

/**
 * kmap_to_page(). Before 6.1 it knew only the pool and fell back to virt_to_page(), giving
 * a wrong page for a local kmap address. From 6.1 both cases warn once (the function was
 * meant to go away) and local addresses are looked up in current's kmap_ctrl; the window
 * test there excludes the page at vaddr(FIX_KMAP_BEGIN) itself (spec 8.8).
 */
export function kmapToPage(k: Kernel, ctx: Ctx, va: VAddr): { pfn: number } {
  const l = k.layout
  if (!l.highmem) return { pfn: virtToPfn(k, va.vpn) }
  const knows = l.behaviour.kmapToPageKnowsLocal
  const nr = va.vpn - l.pkmapBaseVpn!
  if (nr >= 0 && nr < k.pool!.count.length) {
    if (knows) warnOnce(k, ctx, 'W10', `kmap_to_page() of pool address ${hexAddr(va.vpn, va.off)}`)
    return { pfn: k.pool!.pte[nr]?.pfn ?? 0 }
  }
  const lo = k.fixToVpn(l.FIX_KMAP_END!)
  const hi = k.fixToVpn(l.FIX_KMAP_BEGIN!)
  if (knows && va.vpn >= lo && va.vpn < hi) {
    warnOnce(k, ctx, 'W11', `kmap_to_page() of local kmap address ${hexAddr(va.vpn, va.off)}`)
    const kc = ctx.task.kmapCtrl
    for (let i = 0; i < kc.idx; i++) {
      if (k.fixToVpn(kmapLocalCalcIdx(k, i, ctx.cpu.id)) === va.vpn) return { pfn: kc.pteval[i]?.pfn ?? 0 }
    }
  }
  return { pfn: virtToPfn(k, va.vpn) }
}
