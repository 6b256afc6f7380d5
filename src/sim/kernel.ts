/**
 * The whole simulated machine's kernel state and its trace: what `mm/highmem.c`,
 * `kernel/sched/` and the x86 page tables would hold, plus the event stream.
 */
import { hexAddr } from './addr.js'
import type { Layout } from './config.js'
import { COST_NS } from './cost.js'
import { Cpu, HARDIRQ_OFFSET, SOFTIRQ_OFFSET, Task, type Ctx, type Pte } from './task.js'

export type SimEvent = { seq: number; ts: number; type: string; cpu: number | null; pid: number | null } & Record<
  string,
  unknown
>

export interface Diagnostic {
  id: string
  kind: 'WARN' | 'BUG' | 'LOCKDEP' | 'SCHED'
  message: string
  pid: number | null
  cpu: number | null
  seq: number
}

/** Thrown by a BUG_ON: unwinds the op; the machine is then halted (panic_on_oops). */
export class KernelBug extends Error {
  constructor(
    readonly id: string,
    readonly text: string,
  ) {
    super(text)
  }
}

export interface IoMapping {
  id: number
  base: number
  size: number
  /** x86_64: the ioremap_wc address of the whole range, as a page number and offset. */
  iomemVpn: number | null
  iomemOff: number
}

/** The persistent kmap pool (spec section 7). */
export interface PkmapPool {
  /** pkmap_count[]: 0 free, 1 mapped but unused (stale TLB possible), n = n-1 users. */
  count: Int32Array
  /** pkmap_page_table: the pool PTEs. */
  pte: (Pte | null)[]
  /** page_address() of highmem pages: pfn -> pool slot. */
  pageSlot: Map<number, number>
  /** last_pkmap_nr. */
  lastPkmapNr: number
  /** pkmap_map_wait. */
  waiters: Task[]
}

export class Kernel {
  readonly cpus: Cpu[]
  readonly tasks = new Map<number, Task>()
  nextPid = 1
  /** Fixmap PTEs by enum fixed_addresses index (one page table shared by all CPUs). */
  readonly fixmap: (Pte | null)[]
  readonly pool: PkmapPool | null
  readonly ioMappings = new Map<number, IoMapping>()
  nextIomemVpn = 0xffffc90000000
  status: 'running' | 'halted' = 'running'
  haltReason: string | null = null

  // Diagnostics state.
  readonly diagnostics: Diagnostic[] = []
  /** WARN_ON_ONCE sites that already fired this boot. */
  readonly warnedOnce = new Set<string>()
  debugLocks = true
  /** __might_sleep's static prev_jiffy, in simulated ns; null until the first splat. */
  lastMightSleepTs: number | null = null

  // Trace.
  seq = 0
  ts = 0
  out: SimEvent[] = []
  /** The context whose task's counters the current op may change, and their last traced values. */
  watched: Ctx | null = null
  private wPc = 0
  private wPf = 0
  private wMig = 0
  private wIdx = 0
  /** Tasks switched in that still have a blocking op to finish. */
  readonly resumeQueue: Task[] = []
  /** Tasks whose affinity excludes their CPU, waiting for the stopper to move them. */
  readonly pendingMoves: Task[] = []

  /** Fixmap addresses formatted once: the trace names them on every map and unmap. */
  private readonly fixAddrCache: string[] = []
  /** The same for the pool's slots (pkmap.ts). */
  readonly pkmapAddrCache: string[] = []

  constructor(readonly layout: Layout) {
    this.cpus = []
    for (let c = 0; c < layout.nrCpus; c++) {
      const idle = new Task(0, `swapper/${c}`, c, [c], layout.KM_MAX_IDX, true)
      idle.state = 'running'
      this.cpus.push(new Cpu(c, idle))
    }
    const fixSize = (layout.FIX_KMAP_END ?? -1) + 1
    this.fixmap = new Array<Pte | null>(fixSize).fill(null)
    this.pool =
      layout.LAST_PKMAP === null
        ? null
        : {
            count: new Int32Array(layout.LAST_PKMAP),
            pte: new Array<Pte | null>(layout.LAST_PKMAP).fill(null),
            pageSlot: new Map(),
            lastPkmapNr: 0,
            waiters: [],
          }
  }

  cpu(c: number): Cpu {
    return this.cpus[c]!
  }

  /** __fix_to_virt(idx) as a page number. */
  fixToVpn(idx: number): number {
    return this.layout.fixaddrTopVpn - idx
  }

  fixAddr(idx: number): string {
    return (this.fixAddrCache[idx] ??= hexAddr(this.fixToVpn(idx)))
  }

  /** The cached string of a page in the kmap window, or null outside it. */
  fixmapWindowAddr(vpn: number): string | null {
    const idx = this.layout.fixaddrTopVpn - vpn
    return idx >= 0 && idx < this.fixmap.length ? this.fixAddr(idx) : null
  }

  advance(ns: number): void {
    this.ts += ns
  }

  /** The seq of the next event: a hot path builds its event literal whole with it. */
  nextSeq(): number {
    return ++this.seq
  }

  /**
   * Traces an event literal the caller built whole, seq and ts included: the hot paths
   * (map, unmap, PTE writes, flushes, counters) avoid the copy `emit` makes, and stamping
   * here instead would store into every event shape from one site (a megamorphic store).
   */
  record<E extends SimEvent>(ctx: Ctx, e: E): E {
    if (ctx.frame !== null) {
      e.pid = null
      ;(e as SimEvent).task = ctx.task.pid
    }
    return this.push(e)
  }

  /**
   * Like `emitCtx` for an event literal built whole with the task context's cpu and pid: in
   * interrupt context it is rebuilt with pid null and `task` right after it, where emitCtx
   * puts it (`record` appends it instead: the two layouts are both in the trace contract).
   */
  recordCtx(ctx: Ctx, e: SimEvent): SimEvent {
    if (ctx.frame === null) return this.push(e)
    const { seq, ts, type, cpu, pid: _, ...fields } = e
    return this.push({ seq, ts, type, cpu, pid: null, task: ctx.task.pid, ...fields })
  }

  /** Traces an event literal built whole that names its CPU and pid itself (no calling context). */
  push<E extends SimEvent>(e: E): E {
    this.out.push(e)
    return e
  }

  emit(type: string, cpu: number | null, pid: number | null, fields?: Record<string, unknown>): SimEvent {
    const e: SimEvent = { seq: ++this.seq, ts: this.ts, type, cpu, pid, ...fields }
    this.out.push(e)
    return e
  }

  /** An event of the context's CPU; in interrupt context pid is null and `task` names current. */
  emitCtx(ctx: Ctx, type: string, fields?: Record<string, unknown>): SimEvent {
    if (ctx.frame === null) return this.emit(type, ctx.cpu.id, ctx.task.pid, fields)
    return this.emit(type, ctx.cpu.id, null, { task: ctx.task.pid, ...fields })
  }

  /** The full preempt_count of a CPU: its task's depth plus every open interrupt frame. */
  preemptCountOf(cpu: Cpu): number {
    let n = cpu.curr.preemptCount
    for (const f of cpu.irq) n += (f.kind === 'hardirq' ? HARDIRQ_OFFSET : SOFTIRQ_OFFSET) + f.preemptCount
    return n
  }

  /** Starts watching the counters of the task an op acts on. */
  watch(ctx: Ctx | null): void {
    this.watched = ctx
    if (ctx === null) return
    this.wPc = this.ctxPreemptCount(ctx)
    this.wPf = ctx.task.pagefaultDisabled
    this.wMig = ctx.task.migrationDisabled
    this.wIdx = ctx.task.kmapCtrl.idx
  }

  /** preempt_count as the context sees it (the frame's count while in an interrupt). */
  ctxPreemptCount(ctx: Ctx): number {
    return ctx.frame === null ? ctx.task.preemptCount : this.preemptCountOf(ctx.cpu)
  }

  /** Emits one `counter` event with the watched task's counters that changed. */
  flushCounters(): void {
    const ctx = this.watched
    if (ctx === null) return
    const t = ctx.task
    const pc = this.ctxPreemptCount(ctx)
    if (pc === this.wPc && t.pagefaultDisabled === this.wPf && t.migrationDisabled === this.wMig && t.kmapCtrl.idx === this.wIdx)
      return
    const e: SimEvent = { seq: this.nextSeq(), ts: this.ts, type: 'counter', cpu: ctx.cpu.id, pid: t.pid }
    if (pc !== this.wPc) e.preemptCount = this.wPc = pc
    if (t.pagefaultDisabled !== this.wPf) e.pagefaultDisabled = this.wPf = t.pagefaultDisabled
    if (t.migrationDisabled !== this.wMig) e.migrationDisabled = this.wMig = t.migrationDisabled
    if (t.kmapCtrl.idx !== this.wIdx) e.kmapIdx = this.wIdx = t.kmapCtrl.idx
    this.record(ctx, e)
  }

  opStart(): void {
    this.out = []
    this.advance(COST_NS.OP)
  }
}
