/**
 * The persistent kmap pool of mm/highmem.c (kmap / kunmap on HIGHMEM kernels): LAST_PKMAP
 * slots shared by every CPU under kmap_lock, handed out round robin from slot 1, recycled
 * only after a global TLB flush when the cursor wraps, and a wait queue for when all are busy.
 */
import { hex, hexAddr } from './addr.js'
import { COST_NS } from './cost.js'
import { bug } from './diag.js'
import { isHighmemPfn } from './highmem.js'
import type { Kernel, PkmapPool } from './kernel.js'
import { mightSleep } from './preempt.js'
import { blockSwitch, scheduleDebug, wakeUpProcess } from './sched.js'
import { KMAP_PROT, type Ctx } from './task.js'

export type KmapResult = { addr: string } | { blocked: true }

function pool(k: Kernel): PkmapPool {
  return k.pool!
}

/** PKMAP_ADDR(nr) as a page number. */
function pkmapVpn(k: Kernel, nr: number): number {
  return k.layout.pkmapBaseVpn! + nr
}

/** PKMAP_ADDR(nr) as the trace names it on every kmap and kunmap, formatted once per slot. */
function pkmapAddr(k: Kernel, nr: number): string {
  return (k.pkmapAddrCache[nr] ??= hexAddr(pkmapVpn(k, nr)))
}

/** flush_all_zero_pkmaps(): frees every slot with count 1; one all-CPU flush if any was. */
function flushAllZeroPkmaps(k: Kernel, ctx: Ctx): void {
  const p = pool(k)
  const freed: number[] = []
  for (let nr = 0; nr < p.count.length; nr++) {
    if (p.count[nr] !== 1) continue
    p.count[nr] = 0
    const pte = p.pte[nr] ?? null
    if (pte === null) bug(k, ctx, 'B8', `pkmap slot ${nr} has count 1 but no PTE`)
    p.pte[nr] = null
    p.pageSlot.delete(pte.pfn)
    freed.push(nr)
  }
  k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'pkmap_flush', cpu: ctx.cpu.id, pid: ctx.task.pid, freed })
  if (freed.length === 0) return
  const start = pkmapVpn(k, 0)
  const end = pkmapVpn(k, p.count.length)
  for (const cpu of k.cpus) for (const vpn of cpu.tlb.keys()) if (vpn >= start && vpn < end) cpu.tlb.delete(vpn)
  k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'tlb_flush', cpu: ctx.cpu.id, pid: ctx.task.pid, scope: 'all', range: { start: hexAddr(start), end: hexAddr(end) } })
  k.advance(COST_NS.TLB_FLUSH_ALL)
}

/**
 * map_new_virtual(): scans from last_pkmap_nr for a free slot, flushing on every wrap.
 * Returns the slot, or null when LAST_PKMAP busy slots were seen in a row: the caller
 * must sleep on the wait queue and rescan when woken.
 */
function mapNewVirtual(k: Kernel, ctx: Ctx, pfn: number): number | null {
  const p = pool(k)
  const last = p.count.length
  for (let budget = last; ; ) {
    p.lastPkmapNr = (p.lastPkmapNr + 1) & (last - 1)
    if (p.lastPkmapNr === 0) {
      flushAllZeroPkmaps(k, ctx)
      budget = last
    }
    if (p.count[p.lastPkmapNr] === 0) break
    if (--budget === 0) return null
  }
  const nr = p.lastPkmapNr
  p.pte[nr] = { pfn, prot: KMAP_PROT }
  p.count[nr] = 1
  p.pageSlot.set(pfn, nr)
  k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'pkmap_map', cpu: ctx.cpu.id, pid: ctx.task.pid, nr, addr: pkmapAddr(k, nr), pfn, count: 1 })
  k.advance(COST_NS.PTE_WRITE)
  return nr
}

/**
 * kmap_high(): the page's pool address, mapping it if it has none. A full pool puts the
 * task to sleep; it finishes the call by itself once woken and switched back in.
 */
function kmapHigh(k: Kernel, ctx: Ctx, pfn: number): KmapResult {
  const p = pool(k)
  let nr = p.pageSlot.get(pfn) ?? mapNewVirtual(k, ctx, pfn)
  if (nr === null) {
    sleepOnPool(k, ctx, pfn)
    return { blocked: true }
  }
  p.count[nr]!++
  if (p.count[nr]! < 2) bug(k, ctx, 'B4', `pkmap_count[${nr}] is ${p.count[nr]} after kmap_high`)
  const addr = pkmapAddr(k, nr)
  k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api: 'kmap', addr, pfn, slot: null, fixIdx: null, nr })
  return { addr }
}

/** The sleep inside map_new_virtual(): TASK_UNINTERRUPTIBLE on pkmap_map_wait, schedule(). */
function sleepOnPool(k: Kernel, ctx: Ctx, pfn: number): void {
  const t = ctx.task
  scheduleDebug(k, ctx) // in an interrupt this is fatal: the machine halts with S1

  pool(k).waiters.push(t)
  t.wait = { kind: 'pkmap', pfn }
  k.emitCtx(ctx, 'pkmap_wait', { pfn })
  k.emitCtx(ctx, 'task_sleep', { target: t.pid })
  t.resume = { kind: 'kmap_high', pfn }
  blockSwitch(k, ctx.cpu, 'sleeping')
}

/**
 * The rest of a kmap_high() that slept on pkmap_map_wait, once its task is switched back
 * in: "someone else mapped my page", else rescan (and maybe sleep again).
 */
export function kmapHighResume(k: Kernel, ctx: Ctx, pfn: number): void {
  const r = kmapHigh(k, ctx, pfn)
  if ('addr' in r) ctx.task.lastResult = r
}

/** kmap(): might_sleep, then the page's linear address (lowmem) or a pool slot. */
export function kmap(k: Kernel, ctx: Ctx, pfn: number): KmapResult {
  mightSleep(k, ctx, 'include/linux/highmem-internal.h:kmap')
  if (!isHighmemPfn(k, pfn)) {
    const addr = hexAddr(k.layout.directMapVpn + pfn)
    k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api: 'kmap', addr, pfn, slot: null, fixIdx: null })
    return { addr }
  }
  return kmapHigh(k, ctx, pfn)
}

/** kunmap(): takes the page, not the address; wakes every pool waiter when a slot frees up. */
export function kunmap(k: Kernel, ctx: Ctx, pfn: number): void {
  mightSleep(k, ctx, 'include/linux/highmem-internal.h:kunmap')
  if (!isHighmemPfn(k, pfn)) {
    k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'kunmap', cpu: ctx.cpu.id, pid: ctx.task.pid, api: 'kunmap', addr: hexAddr(k.layout.directMapVpn + pfn), slot: null, fixIdx: null })
    return
  }
  const p = pool(k)
  const nr = p.pageSlot.get(pfn)
  if (nr === undefined) bug(k, ctx, 'B6', `kunmap_high: page pfn ${hex(pfn)} has no pool address`)
  const count = --p.count[nr]!
  const addr = pkmapAddr(k, nr)
  k.recordCtx(ctx, { seq: k.nextSeq(), ts: k.ts, type: 'pkmap_unmap', cpu: ctx.cpu.id, pid: ctx.task.pid, nr, addr, pfn, count })
  if (count === 0) bug(k, ctx, 'B7', `pkmap_count[${nr}] dropped to 0: one kunmap too many`)
  if (count === 1 && p.waiters.length > 0) {
    const woken = p.waiters.splice(0)
    k.emitCtx(ctx, 'pkmap_wake', { nr, pids: woken.map((t) => t.pid) })
    for (const t of woken) wakeUpProcess(k, t, ctx.frame === null ? ctx.task.pid : null)
  }
}

/** kmap_flush_unused(). */
export function kmapFlushUnused(k: Kernel, ctx: Ctx): void {
  if (k.pool !== null) flushAllZeroPkmaps(k, ctx)
}

/** A waiter woken without a slot having been freed (`wake`) rescans too: leave the queue. */
export function leavePoolQueue(k: Kernel, pid: number): void {
  const p = k.pool
  if (p === null) return
  const i = p.waiters.findIndex((t) => t.pid === pid)
  if (i >= 0) p.waiters.splice(i, 1)
}
