/**
 * The cost model: simulated time `ts` (nanoseconds) advances only by these named costs,
 * never by the wall clock, so a trace is reproducible and lines up in a trace viewer.
 * The figures are order-of-magnitude values for a 2020s x86 core, chosen so that the
 * relative weight of the operations is right (a global TLB flush by IPI is far dearer
 * than an invlpg, a context switch dearer than a PTE write).
 */
export const COST_NS = {
  /** Entering and leaving one kernel API call (the op itself). */
  OP: 20,
  /** One set_pte / pte_clear: a single store to the page table. */
  PTE_WRITE: 5,
  /** invlpg of one page on the local CPU. */
  TLB_FLUSH_ONE: 100,
  /** flush_tlb_kernel_range over the pool: IPIs to every CPU and their flushes. */
  TLB_FLUSH_ALL: 4000,
  /** __schedule + switch_to, without the kmap hooks (their PTE writes are costed apart). */
  CONTEXT_SWITCH: 1500,
  /** Interrupt entry or exit. */
  IRQ: 300,
  /** A user page fault that is handled (the page is faulted in). */
  FAULT: 1000,
} as const
