/**
 * io-mapping (include/linux/io-mapping.h, arch/x86/mm/iomap_32.c). x86_32 has
 * HAVE_ATOMIC_IOMAP: each map takes a kmap_local slot for one page of the aperture,
 * whether or not the kernel has HIGHMEM. x86_64 ioremaps the whole range once and maps
 * by adding the offset.
 */
import { hex, hexAddr, type VAddr } from './addr.js'
import { bug } from './diag.js'
import { kmapLocalPfnProt, kunmapLocalIndexed, type MapResult } from './highmem.js'
import { kunmapLocal } from './highmem-internal.js'
import type { IoMapping, Kernel } from './kernel.js'
import { pagefaultDisable, pagefaultEnable, preemptDisable, preemptEnable } from './preempt.js'
import type { Ctx } from './task.js'

/** PAT is assumed on, so iomap_create_wc keeps write-combining (contract section 8). */
const IO_PROT = 'PAGE_KERNEL_WC' as const

/** io_mapping_create_wc(). On x86_64 the ioremap_wc address comes from the vmalloc area. */
export function ioMappingCreate(k: Kernel, base: number, size: number): IoMapping {
  const id = k.ioMappings.size + 1
  let iomemVpn: number | null = null
  const off = base % 4096
  if (k.layout.arch === 'x86_64') {
    iomemVpn = k.nextIomemVpn
    // vmalloc areas are page granular and end in a guard page.
    k.nextIomemVpn += Math.ceil((off + size) / 4096) + 1
  }
  const m: IoMapping = { id, base, size, iomemVpn, iomemOff: off }
  k.ioMappings.set(id, m)
  const fields: Record<string, unknown> = { mapping: id, base: hex(base), size }
  if (iomemVpn !== null) fields.iomem = hexAddr(iomemVpn, off)
  k.emit('io_mapping_create', null, null, fields)
  return m
}

function hasAtomicIomap(k: Kernel): boolean {
  return k.layout.arch === 'x86_32'
}

/** The address of `offset` inside an ioremapped range (x86_64). */
function iomemAddr(m: IoMapping, offset: number): string {
  const byte = m.iomemOff + offset
  return hexAddr(m.iomemVpn! + Math.floor(byte / 4096), byte % 4096)
}

/** BUG_ON(offset >= mapping->size): only the x86_32 (HAVE_ATOMIC_IOMAP) variants check. */
function checkOffset(k: Kernel, ctx: Ctx, m: IoMapping, offset: number): void {
  if (offset >= m.size) bug(k, ctx, 'B9', `io-mapping offset ${hex(offset)} >= size ${hex(m.size)}`)
}

/**
 * io_mapping_map_local_wc() on x86_32 after the offset check: __iomap_local_pfn_prot of
 * the page (the offset's low 12 bits are dropped: the caller gets the page start).
 */
function mapPage(k: Kernel, ctx: Ctx, m: IoMapping, offset: number, api: string): MapResult {
  return kmapLocalPfnProt(k, ctx, Math.floor((m.base + offset) / 4096), IO_PROT, api)
}

function mapIomem(k: Kernel, ctx: Ctx, m: IoMapping, offset: number, api: string): MapResult {
  const addr = iomemAddr(m, offset)
  k.emitCtx(ctx, 'kmap', { api, addr, pfn: Math.floor((m.base + offset) / 4096), slot: null, fixIdx: null })
  return { addr, slot: null, fixIdx: null }
}

export function ioMappingMapLocalWc(k: Kernel, ctx: Ctx, m: IoMapping, offset: number): MapResult {
  const api = 'io_mapping_map_local_wc'
  if (hasAtomicIomap(k)) checkOffset(k, ctx, m, offset)
  return hasAtomicIomap(k) ? mapPage(k, ctx, m, offset, api) : mapIomem(k, ctx, m, offset, api)
}

/** io_mapping_map_atomic_wc(): preemption and page faults off first (also on RT up to 6.1). */
export function ioMappingMapAtomicWc(k: Kernel, ctx: Ctx, m: IoMapping, offset: number): MapResult {
  const api = 'io_mapping_map_atomic_wc'
  if (hasAtomicIomap(k)) checkOffset(k, ctx, m, offset)
  preemptDisable(ctx)
  pagefaultDisable(ctx)
  return hasAtomicIomap(k) ? mapPage(k, ctx, m, offset, api) : mapIomem(k, ctx, m, offset, api)
}

/** io_mapping_unmap_local(): kunmap_local_indexed on x86_32, nothing on x86_64. */
export function ioMappingUnmapLocal(k: Kernel, ctx: Ctx, va: VAddr): void {
  const api = 'io_mapping_unmap_local'
  if (hasAtomicIomap(k)) kunmapLocalIndexed(k, ctx, va, api)
  else kunmapLocal(k, ctx, va, api)
}

/** io_mapping_unmap_atomic(). */
export function ioMappingUnmapAtomic(k: Kernel, ctx: Ctx, va: VAddr): void {
  const api = 'io_mapping_unmap_atomic'
  if (hasAtomicIomap(k)) kunmapLocalIndexed(k, ctx, va, api)
  else kunmapLocal(k, ctx, va, api)
  pagefaultEnable(ctx)
  preemptEnable(k, ctx)
}
