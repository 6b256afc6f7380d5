/**
 * Tasks, CPUs and the context an op runs in: the parts of task_struct, struct rq and the
 * per-CPU preempt/irq state that the kmap machinery reads or writes.
 */

/** Protections the model knows; x86 kmap_prot is PAGE_KERNEL. */
export const PROTS = ['PAGE_KERNEL', 'PAGE_KERNEL_RO', 'PAGE_KERNEL_EXEC', 'PAGE_KERNEL_NOCACHE', 'PAGE_KERNEL_WC'] as const
export type Prot = (typeof PROTS)[number]
export const KMAP_PROT: Prot = 'PAGE_KERNEL'

/** A PTE value, kept as {pfn, prot}: raw x86 bits are not needed (spec section 12, item 10). */
export interface Pte {
  readonly pfn: number
  readonly prot: Prot
}

export type TaskState = 'running' | 'runnable' | 'sleeping' | 'dead'

/** struct kmap_ctrl in task_struct: the per-task local-kmap stack. */
export interface KmapCtrl {
  /** kmap_ctrl.idx: stack depth in slots, guard slots included. */
  idx: number
  /** kmap_ctrl.pteval[KM_MAX_IDX]: the saved PTE of each slot; null = pte 0. */
  pteval: (Pte | null)[]
}

/** What a sleeping task waits for. */
export type Wait =
  | { kind: 'sleep' }
  | { kind: 'pkmap'; pfn: number }
  | { kind: 'affinity'; target: number }

/**
 * The rest of a blocking op, run once the task is switched back in. Data rather than a
 * closure, so that a snapshot of the machine can hold a task that is still asleep.
 */
export type Resume = { kind: 'kmap_high'; pfn: number }

export class Task {
  state: TaskState = 'runnable'
  readonly kmapCtrl: KmapCtrl
  /** Preemption-disable depth of the task itself (preempt_count low byte in task context). */
  preemptCount = 0
  /** current->pagefault_disabled. */
  pagefaultDisabled = 0
  /** current->migration_disabled. */
  migrationDisabled = 0
  /** cpus_mask: the affinity set by sched_setaffinity, ascending. */
  cpusMask: number[]
  /**
   * cpus_ptr narrowed to {cpu}: set when a migrate-disabled task is switched out
   * (migrate_disable_switch), cleared by its outermost migrate_enable; null = &cpus_mask.
   */
  cpusPtrPinned: number | null = null
  wait: Wait | null = null
  resume: Resume | null = null
  lastResult: Record<string, unknown> | null = null

  constructor(
    readonly pid: number,
    readonly name: string,
    public cpu: number,
    cpusMask: number[],
    kmMaxIdx: number,
    readonly isIdle = false,
  ) {
    this.cpusMask = cpusMask
    this.kmapCtrl = { idx: 0, pteval: new Array<Pte | null>(kmMaxIdx).fill(null) }
  }

  /** The CPUs the scheduler may place this task on (what cpus_ptr points at). */
  cpusAllowed(): number[] {
    return this.cpusPtrPinned === null ? this.cpusMask : [this.cpusPtrPinned]
  }
}

/** HARDIRQ_OFFSET and SOFTIRQ_OFFSET in preempt_count. */
export const HARDIRQ_OFFSET = 0x10000
export const SOFTIRQ_OFFSET = 0x100

/** An interrupt running on top of a CPU's current task. */
export interface IrqFrame {
  kind: 'hardirq' | 'softirq'
  irqsDisabled: boolean
  /** preempt_disable depth taken inside this frame. */
  preemptCount: number
}

export class Cpu {
  curr: Task
  readonly runqueue: Task[] = []
  /** Open interrupt frames, innermost last. */
  readonly irq: IrqFrame[] = []
  /** Interrupts disabled in task context (local_irq_disable). */
  irqsDisabled = false
  needResched = false
  /** Task that switch_to named while the CPU could not switch yet. */
  reschedNext: Task | null = null
  /** rq->nr_pinned: migrate-disabled tasks on this runqueue (unsigned int). */
  nrPinned = 0
  /** This CPU's TLB: page number -> cached translation (kernel entries are global). */
  readonly tlb = new Map<number, Pte>()

  constructor(
    readonly id: number,
    readonly idle: Task,
  ) {
    this.curr = idle
  }
}

/** Where an op runs: a task on its CPU, possibly inside an interrupt on top of it. */
export interface Ctx {
  cpu: Cpu
  /** `current`: the task, or the task the interrupt interrupted. */
  task: Task
  /** The innermost interrupt frame when the op runs in interrupt context. */
  frame: IrqFrame | null
}
