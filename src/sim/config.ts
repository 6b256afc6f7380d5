/**
 * Machine config (contract section 2): validation, Kconfig selections (spec 2.1), and the
 * layout a real kernel of that config computes (spec 2.2-2.5, contract section 9).
 */
import { hexAddr, parseAddr, parsePhys } from './addr.js'
import { ConfigError } from './errors.js'
import { behaviourOf, KERNEL_VERSIONS, type Behaviour, type KernelVersion } from './version.js'

export type Arch = 'x86_32' | 'x86_64'

export const KCONFIG_SWITCHES = [
  'HIGHMEM',
  'X86_PAE',
  'DEBUG_KMAP_LOCAL',
  'DEBUG_KMAP_LOCAL_FORCE_MAP',
  'DEBUG_HIGHMEM',
  'PREEMPT_RT',
] as const
export type KconfigSwitch = (typeof KCONFIG_SWITCHES)[number]

export interface MachineConfigInput {
  arch: Arch
  cpus: number
  kernel?: KernelVersion
  config?: Partial<Record<KconfigSwitch, boolean>>
  layout?: {
    fixaddrTop?: string | number
    fixKmapBegin?: number
    pageOffset?: string | number
    pkmapBase?: string | number
    highmemStartPfn?: string | number
    directMapBase?: string | number
    lastPkmap?: number
  }
  seed?: number
}

/** The numbers the model computes with (all addresses as page numbers). */
export interface Layout {
  arch: Arch
  nrCpus: number
  /** CONFIG_SMP: without it migrate_disable()/migrate_enable() are empty. */
  smp: boolean
  highmem: boolean
  pae: boolean
  /** CONFIG_KMAP_LOCAL: x86_32 always (io-mapping needs it); x86_64 only with FORCE_MAP. */
  kmapLocal: boolean
  debugKmapLocal: boolean
  forceMap: boolean
  debugHighmem: boolean
  preemptRt: boolean
  /** KM_MAX_IDX: slots per CPU (asm-generic/kmap_size.h). */
  KM_MAX_IDX: number
  /** KM_INCR: stack step per map; 2 with DEBUG_KMAP_LOCAL leaves a guard slot between maps. */
  KM_INCR: number
  fixaddrTopVpn: number
  /** null when the kernel has no kmap fixmap range (x86_64 without FORCE_MAP). */
  FIX_KMAP_BEGIN: number | null
  FIX_KMAP_END: number | null
  /** Start of the linear map: PAGE_OFFSET (x86_32) or the direct-map base (x86_64). */
  directMapVpn: number
  /** First pfn outside lowmem (x86_32: max_low_pfn); Infinity on x86_64. */
  highmemStartPfn: number
  /** Highest pfn + 1 the physical address width allows. */
  maxPfn: number
  pkmapBaseVpn: number | null
  LAST_PKMAP: number | null
  addrBits: 32 | 64
  version: KernelVersion
  behaviour: Behaviour
}

export interface Window {
  start: string
  end: string
}

export interface EffectiveConfig {
  arch: Arch
  cpus: number
  kernel: KernelVersion
  config: Record<KconfigSwitch | 'KMAP_LOCAL' | 'SMP', boolean>
  layout: {
    fixaddrTop: string
    fixKmapBegin: number | null
    pageOffset: string | null
    pkmapBase: string | null
    highmemStartPfn: number | null
    directMapBase: string | null
    lastPkmap: number | null
  }
  seed: number
  KM_MAX_IDX: number | null
  KM_INCR: number | null
  FIX_KMAP_BEGIN: number | null
  FIX_KMAP_END: number | null
  LAST_PKMAP: number | null
  kmapWindow: Window | null
  pkmapWindow: Window | null
}

const X86_32_FIXADDR_TOP = 0xfffff000
const X86_32_PAGE_OFFSET = 0xc0000000
/** 68 on a typical SMP build: FIX_HOLE, DBGP, EARLYCON, APIC, 64 IO-APIC entries (spec 2.4). */
const X86_32_FIX_KMAP_BEGIN = 68
/** round_up(VSYSCALL_ADDR + PAGE_SIZE, PMD_SIZE) - PAGE_SIZE (spec 2.5). */
const X86_64_FIXADDR_TOP_VPN = 0xffffffffff7ff
/** 511 (VSYSCALL_PAGE) + DBGP, EARLYCON, APIC + 128 IO-APIC entries (spec 2.5). */
const X86_64_FIX_KMAP_BEGIN = 643
const X86_64_DIRECT_MAP_VPN = 0xffff888000000
/** Pages of struct cpu_entry_area per CPU (contract section 9, step 4). */
const CPU_ENTRY_AREA_PAGES_PER_CPU = 43
/** FIX_BTMAP_* boot-time slots (TOTAL_FIX_BTMAPS). */
const TOTAL_FIX_BTMAPS = 512
/** __VMALLOC_RESERVE: lowmem ends 128 MiB below VMALLOC_END. */
const VMALLOC_RESERVE_PAGES = 0x8000

function fail(field: string, rule: string): never {
  throw new ConfigError(field, rule)
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], prefix: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(prefix + k, `unknown field; allowed: ${allowed.join(', ')}`)
  }
}

/**
 * The x86_32 chain from FIX_KMAP_END to PKMAP_BASE and max_low_pfn (contract section 9):
 * the fixmap's size decides where cpu_entry_area, the LDT remap and the pkmap pool land.
 */
function deriveX86_32(
  fixaddrTopVpn: number,
  fixKmapEnd: number,
  nrCpus: number,
  pae: boolean,
  highmem: boolean,
): { pkmapBaseVpn: number; ldtBaseVpn: number } {
  const ptrsPerPte = pae ? 512 : 1024
  const pmdPages = pae ? 512 : 1024 // PMD_SIZE / PAGE_SIZE: 2 MiB or 4 MiB
  const pmdMask = (vpn: number): number => vpn - (vpn % pmdPages)
  const endOfPermanent = fixKmapEnd + 1
  // FIX_BTMAP_END: the 512 boot-time slots must not cross a page-table boundary.
  const crosses =
    Math.floor(endOfPermanent / ptrsPerPte) !== Math.floor((endOfPermanent + TOTAL_FIX_BTMAPS - 1) / ptrsPerPte)
  const btmapEnd = crosses ? endOfPermanent + TOTAL_FIX_BTMAPS - (endOfPermanent % TOTAL_FIX_BTMAPS) : endOfPermanent
  const endOfFixed = btmapEnd + TOTAL_FIX_BTMAPS + 1 // + FIX_WP_TEST... __end_of_fixed_addresses
  const fixaddrTotStart = fixaddrTopVpn - endOfFixed
  const cpuEntryAreaBase = pmdMask(fixaddrTotStart - (CPU_ENTRY_AREA_PAGES_PER_CPU * nrCpus + 1))
  const ldtBaseVpn = pmdMask(cpuEntryAreaBase - 1)
  const pkmapBaseVpn = highmem ? pmdMask(ldtBaseVpn - 1) : ldtBaseVpn
  return { pkmapBaseVpn, ldtBaseVpn }
}

export function parseConfig(input: unknown): { layout: Layout; effective: EffectiveConfig } {
  if (!isRecord(input)) fail('config', 'must be an object')
  checkKeys(input, ['arch', 'cpus', 'kernel', 'config', 'layout', 'seed'], '')
  const arch = input.arch
  if (arch !== 'x86_32' && arch !== 'x86_64') fail('arch', 'must be "x86_32" or "x86_64"')
  const cpus = input.cpus
  if (typeof cpus !== 'number' || !Number.isInteger(cpus) || cpus < 1 || cpus > 64)
    fail('cpus', 'must be an integer from 1 to 64 (NR_CPUS)')
  const kernel = input.kernel ?? '6.1'
  if (typeof kernel !== 'string' || !(KERNEL_VERSIONS as readonly string[]).includes(kernel))
    fail('kernel', `must be one of ${KERNEL_VERSIONS.join(', ')}`)
  const seed = input.seed ?? 1
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) fail('seed', 'must be an integer')

  const kc = input.config ?? {}
  if (!isRecord(kc)) fail('config', 'must be an object of Kconfig switches')
  checkKeys(kc, KCONFIG_SWITCHES, 'config.')
  for (const [k, v] of Object.entries(kc)) if (typeof v !== 'boolean') fail(`config.${k}`, 'must be a boolean')
  const want = (k: KconfigSwitch, dflt: boolean): boolean => (kc[k] as boolean | undefined) ?? dflt
  const is32 = arch === 'x86_32'

  // Kconfig: HIGHMEM and X86_PAE exist only on X86_32; DEBUG_HIGHMEM depends on HIGHMEM and
  // selects DEBUG_KMAP_LOCAL and (x86 supports it) FORCE_MAP, which selects DEBUG_KMAP_LOCAL.
  const highmem = want('HIGHMEM', is32)
  const pae = want('X86_PAE', false)
  if (!is32 && highmem) fail('config.HIGHMEM', 'HIGHMEM depends on X86_32')
  if (!is32 && pae) fail('config.X86_PAE', 'X86_PAE depends on X86_32')
  const debugHighmem = want('DEBUG_HIGHMEM', false)
  if (debugHighmem && !highmem) fail('config.DEBUG_HIGHMEM', 'DEBUG_HIGHMEM depends on HIGHMEM')
  const forceMap = want('DEBUG_KMAP_LOCAL_FORCE_MAP', false) || debugHighmem
  const kmapLocal = is32 || forceMap
  const debugKmapLocal = want('DEBUG_KMAP_LOCAL', false) || forceMap
  if (debugKmapLocal && !kmapLocal)
    fail('config.DEBUG_KMAP_LOCAL', 'DEBUG_KMAP_LOCAL depends on KMAP_LOCAL, which x86_64 has only with DEBUG_KMAP_LOCAL_FORCE_MAP')
  const preemptRt = want('PREEMPT_RT', false)

  const lay = input.layout ?? {}
  if (!isRecord(lay)) fail('layout', 'must be an object')
  const allowed = is32
    ? ['fixaddrTop', 'fixKmapBegin', 'pageOffset', 'pkmapBase', 'highmemStartPfn', 'lastPkmap']
    : ['fixaddrTop', 'fixKmapBegin', 'directMapBase']
  checkKeys(lay, allowed, 'layout.')
  const bits = is32 ? 32 : 64
  const pageAligned = (field: string, v: unknown): number => {
    const a = parseAddr(v, bits, field, ConfigError)
    if (a.off !== 0) fail(field, 'must be page aligned')
    return a.vpn
  }

  const KM_MAX_IDX = debugKmapLocal ? 33 : 16
  const KM_INCR = debugKmapLocal ? 2 : 1
  const fixaddrTopVpn =
    lay.fixaddrTop !== undefined ? pageAligned('layout.fixaddrTop', lay.fixaddrTop) : is32 ? X86_32_FIXADDR_TOP / 4096 : X86_64_FIXADDR_TOP_VPN
  let FIX_KMAP_BEGIN: number | null = null
  let FIX_KMAP_END: number | null = null
  if (kmapLocal) {
    const b = lay.fixKmapBegin ?? (is32 ? X86_32_FIX_KMAP_BEGIN : X86_64_FIX_KMAP_BEGIN)
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 4096)
      fail('layout.fixKmapBegin', 'must be an integer from 0 to 4096 (an enum fixed_addresses index)')
    FIX_KMAP_BEGIN = b
    FIX_KMAP_END = b + KM_MAX_IDX * cpus - 1
  } else if (lay.fixKmapBegin !== undefined) {
    fail('layout.fixKmapBegin', 'this kernel has no FIX_KMAP range (x86_64 has it only with DEBUG_KMAP_LOCAL_FORCE_MAP)')
  }

  let directMapVpn: number
  let highmemStartPfn = Infinity
  let maxPfn: number
  let pkmapBaseVpn: number | null = null
  let LAST_PKMAP: number | null = null
  if (is32) {
    directMapVpn = lay.pageOffset !== undefined ? pageAligned('layout.pageOffset', lay.pageOffset) : X86_32_PAGE_OFFSET / 4096
    if (directMapVpn < 0x40000 || directMapVpn >= fixaddrTopVpn - 0x8000)
      fail('layout.pageOffset', 'must lie between 0x40000000 and the fixmap, leaving room for vmalloc')
    const { pkmapBaseVpn: derivedPkmap, ldtBaseVpn } = deriveX86_32(
      fixaddrTopVpn,
      FIX_KMAP_END!, // x86_32 always builds KMAP_LOCAL
      cpus,
      pae,
      highmem,
    )
    maxPfn = pae ? 2 ** 24 : 2 ** 20
    if (highmem) {
      LAST_PKMAP = pae ? 512 : 1024
      if (lay.lastPkmap !== undefined) {
        const n = lay.lastPkmap
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 2 || n > LAST_PKMAP || (n & (n - 1)) !== 0)
          fail('layout.lastPkmap', `must be a power of two from 2 to ${LAST_PKMAP} (LAST_PKMAP_MASK needs a power of two)`)
        LAST_PKMAP = n
      }
      pkmapBaseVpn = lay.pkmapBase !== undefined ? pageAligned('layout.pkmapBase', lay.pkmapBase) : derivedPkmap
    } else if (lay.pkmapBase !== undefined || lay.lastPkmap !== undefined) {
      fail(lay.pkmapBase !== undefined ? 'layout.pkmapBase' : 'layout.lastPkmap', 'there is no pkmap pool without HIGHMEM')
    }
    // VMALLOC_END sits two pages below the pool (or the LDT remap without HIGHMEM), and
    // lowmem ends __VMALLOC_RESERVE below that: max_low_pfn on a machine with enough RAM.
    const vmallocEnd = (pkmapBaseVpn ?? ldtBaseVpn) - 2
    const derivedHighStart = vmallocEnd - VMALLOC_RESERVE_PAGES - directMapVpn
    if (lay.highmemStartPfn !== undefined) {
      const p = parsePhys(lay.highmemStartPfn, 'layout.highmemStartPfn', ConfigError)
      if (p < 1 || p > derivedHighStart + VMALLOC_RESERVE_PAGES)
        fail('layout.highmemStartPfn', `must be from 1 to ${hexAddr(0, derivedHighStart + VMALLOC_RESERVE_PAGES)} (lowmem must fit below vmalloc)`)
      highmemStartPfn = p
    } else highmemStartPfn = derivedHighStart
    if (highmemStartPfn > maxPfn) highmemStartPfn = maxPfn
    if (pkmapBaseVpn !== null && LAST_PKMAP !== null) {
      const poolEnd = pkmapBaseVpn + LAST_PKMAP // exclusive
      const kmapLo = fixaddrTopVpn - FIX_KMAP_END!
      const kmapHi = fixaddrTopVpn - FIX_KMAP_BEGIN! // inclusive
      if (poolEnd > kmapLo && pkmapBaseVpn <= kmapHi)
        fail('layout.pkmapBase', `the pool ${hexAddr(pkmapBaseVpn)}-${hexAddr(poolEnd)} overlaps the kmap window`)
      if (pkmapBaseVpn < directMapVpn + highmemStartPfn)
        fail('layout.pkmapBase', 'the pool must lie above lowmem (PAGE_OFFSET + highmemStartPfn pages)')
      if (poolEnd > fixaddrTopVpn) fail('layout.pkmapBase', 'the pool must lie below FIXADDR_TOP')
    }
  } else {
    directMapVpn = lay.directMapBase !== undefined ? pageAligned('layout.directMapBase', lay.directMapBase) : X86_64_DIRECT_MAP_VPN
    if (directMapVpn < 0xffff800000000 || directMapVpn > 0xffffc00000000)
      fail('layout.directMapBase', 'must lie in the kernel half, between 0xffff800000000000 and 0xffffc00000000000')
    maxPfn = 2 ** 34 // MAX_PHYSMEM_BITS 46 with 4-level paging
  }
  if (FIX_KMAP_END !== null && fixaddrTopVpn - FIX_KMAP_END <= directMapVpn + (is32 ? highmemStartPfn : 0))
    fail('layout.fixaddrTop', 'the kmap window would fall below the top of lowmem')

  const layout: Layout = {
    arch,
    nrCpus: cpus,
    smp: cpus > 1,
    highmem,
    pae,
    kmapLocal,
    debugKmapLocal,
    forceMap,
    debugHighmem,
    preemptRt,
    KM_MAX_IDX,
    KM_INCR,
    fixaddrTopVpn,
    FIX_KMAP_BEGIN,
    FIX_KMAP_END,
    directMapVpn,
    highmemStartPfn,
    maxPfn,
    pkmapBaseVpn,
    LAST_PKMAP,
    addrBits: bits,
    version: kernel as KernelVersion,
    behaviour: behaviourOf(kernel as KernelVersion),
  }
  return { layout, effective: effectiveConfig(layout, seed) }
}

function effectiveConfig(l: Layout, seed: number): EffectiveConfig {
  const is32 = l.arch === 'x86_32'
  const win = (lo: number, hi: number): Window => ({ start: hexAddr(lo), end: hexAddr(hi) })
  return {
    arch: l.arch,
    cpus: l.nrCpus,
    kernel: l.version,
    config: {
      HIGHMEM: l.highmem,
      X86_PAE: l.pae,
      DEBUG_KMAP_LOCAL: l.debugKmapLocal,
      DEBUG_KMAP_LOCAL_FORCE_MAP: l.forceMap,
      DEBUG_HIGHMEM: l.debugHighmem,
      PREEMPT_RT: l.preemptRt,
      KMAP_LOCAL: l.kmapLocal,
      SMP: l.smp,
    },
    layout: {
      fixaddrTop: hexAddr(l.fixaddrTopVpn),
      fixKmapBegin: l.FIX_KMAP_BEGIN,
      pageOffset: is32 ? hexAddr(l.directMapVpn) : null,
      pkmapBase: l.pkmapBaseVpn === null ? null : hexAddr(l.pkmapBaseVpn),
      highmemStartPfn: is32 ? l.highmemStartPfn : null,
      directMapBase: is32 ? null : hexAddr(l.directMapVpn),
      lastPkmap: l.LAST_PKMAP,
    },
    seed,
    KM_MAX_IDX: l.kmapLocal ? l.KM_MAX_IDX : null,
    KM_INCR: l.kmapLocal ? l.KM_INCR : null,
    FIX_KMAP_BEGIN: l.FIX_KMAP_BEGIN,
    FIX_KMAP_END: l.FIX_KMAP_END,
    LAST_PKMAP: l.LAST_PKMAP,
    kmapWindow:
      l.FIX_KMAP_BEGIN === null || l.FIX_KMAP_END === null
        ? null
        : win(l.fixaddrTopVpn - l.FIX_KMAP_END, l.fixaddrTopVpn - l.FIX_KMAP_BEGIN),
    // Inclusive end, like kmapWindow: the last pool page.
    pkmapWindow:
      l.pkmapBaseVpn === null || l.LAST_PKMAP === null ? null : win(l.pkmapBaseVpn, l.pkmapBaseVpn + l.LAST_PKMAP - 1),
  }
}
