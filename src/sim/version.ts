/**
 * Behaviour versions (spec section 11.1). Each flag is one change between kernel releases
 * that shows on x86; the machine picks them once from its `kernel` string. Two rows of the
 * spec's table do not show on x86 and have no flag: the 5.18 guard check (raw value instead
 * of pte_none: identical where a zero PTE is "none", as on x86) and the 5.16 non-linear PTE
 * lookup (ARM only). "5.18" is therefore kept as a version that behaves like 5.17.
 */
export const KERNEL_VERSIONS = ['5.11.0', '5.11.11', '5.15', '5.17', '5.18', '6.1'] as const
export type KernelVersion = (typeof KERNEL_VERSIONS)[number]

export interface Behaviour {
  /**
   * The switch hooks decide "guard slot" by DEBUG_HIGHMEM in 5.11.0-5.11.10 (a bug: the
   * layout follows DEBUG_KMAP_LOCAL), fixed by "mm/highmem: Fix
   * CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP" (5.11.11 / 5.12).
   */
  guardKeyedOnDebugHighmem: boolean
  /** "highmem: Don't disable preemption on RT in kmap_atomic()" (5.15). */
  rtKmapAtomicMigrates: boolean
  /** "sched: Trigger warning if ->migration_disabled counter underflows." (5.17): M1. */
  migrateEnableUnderflowWarns: boolean
  /** "highmem: fix kmap_to_page() for kmap_local_page() addresses" (6.1): W10, W11. */
  kmapToPageKnowsLocal: boolean
}

const ORDER: Record<KernelVersion, number> = {
  '5.11.0': 0,
  '5.11.11': 1,
  '5.15': 2,
  '5.17': 3,
  '5.18': 4,
  '6.1': 5,
}

export function behaviourOf(v: KernelVersion): Behaviour {
  const at = (since: KernelVersion): boolean => ORDER[v] >= ORDER[since]
  return {
    guardKeyedOnDebugHighmem: !at('5.11.11'),
    rtKmapAtomicMigrates: at('5.15'),
    migrateEnableUnderflowWarns: at('5.17'),
    kmapToPageKnowsLocal: at('6.1'),
  }
}
