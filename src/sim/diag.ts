/**
 * Kernel diagnostics (spec section 4): WARN_ON_ONCE with per-site memory, BUG_ON that
 * halts the machine, DEBUG_LOCKS_WARN_ON, "scheduling while atomic" and the rate-limited
 * might_sleep splat. Each is recorded in the machine's log and traced as a `diagnostic`.
 */
import { KernelBug, type Diagnostic, type Kernel } from './kernel.js'
import type { Ctx } from './task.js'

/** Diagnostic ids (spec section 4, contract section 8) and the kernel site of each. */
export const SITES = {
  W1: 'mm/highmem.c kmap_local_idx_push',
  W2: 'mm/highmem.c kunmap_local_indexed',
  W3: 'mm/highmem.c kunmap_local_indexed',
  W4: 'mm/highmem.c kunmap_local_indexed',
  W5: 'mm/highmem.c __kmap_local_sched_out',
  W6: 'mm/highmem.c __kmap_local_sched_out',
  W7: 'mm/highmem.c __kmap_local_sched_in',
  W8: 'mm/highmem.c __kmap_local_sched_in',
  W9: 'mm/highmem.c kmap_local_fork',
  W10: 'mm/highmem.c __kmap_to_page',
  W11: 'mm/highmem.c __kmap_to_page',
  B1: 'mm/highmem.c kmap_local_idx_push',
  B2: 'mm/highmem.c kmap_local_idx_pop',
  B3: 'mm/highmem.c __kmap_local_pfn_prot',
  B4: 'mm/highmem.c kmap_high',
  B6: 'mm/highmem.c kunmap_high',
  B7: 'mm/highmem.c kunmap_high',
  B8: 'mm/highmem.c flush_all_zero_pkmaps',
  B9: 'include/linux/io-mapping.h io_mapping_map_local_wc',
  D1: 'kernel/entry/common.c exit_to_user_mode_prepare',
  D2: 'kernel/sched/core.c preempt_count_sub',
  M1: 'kernel/sched/core.c migrate_enable',
  M2: 'kernel/sched/core.c __set_cpus_allowed_ptr',
  M3: 'kernel/sched/core.c set_task_cpu',
  S1: 'kernel/sched/core.c __schedule_bug',
  S2: 'kernel/sched/core.c __might_sleep',
} as const
export type DiagId = keyof typeof SITES

function record(k: Kernel, ctx: Ctx | null, id: DiagId, kind: Diagnostic['kind'], message: string): void {
  const cpu = ctx?.cpu.id ?? null
  const pid = ctx === null || ctx.frame !== null ? null : ctx.task.pid
  const e = ctx === null ? k.emit('diagnostic', null, null, { id, kind, message }) : k.emitCtx(ctx, 'diagnostic', { id, kind, message })
  k.diagnostics.push({ id, kind, message, pid, cpu, seq: e.seq })
}

function where(ctx: Ctx | null): string {
  if (ctx === null) return 'CPU: - PID: -'
  return `CPU: ${ctx.cpu.id} PID: ${ctx.frame === null ? ctx.task.pid : `${ctx.task.pid} (in ${ctx.frame.kind})`}`
}

/** WARN_ON_ONCE(cond) for a true condition: prints the first time per site; the caller goes on. */
export function warnOnce(k: Kernel, ctx: Ctx | null, id: DiagId, detail: string): void {
  if (k.warnedOnce.has(id)) return
  k.warnedOnce.add(id)
  k.flushCounters()
  record(k, ctx, id, 'WARN', `WARNING: ${where(ctx)} at ${SITES[id]}: ${detail}`)
}

/** BUG_ON(cond) for a true condition: the oops ends the op and (panic_on_oops) the machine. */
export function bug(k: Kernel, ctx: Ctx | null, id: DiagId, detail: string): never {
  k.flushCounters()
  const text = `kernel BUG at ${SITES[id]}! ${detail}`
  record(k, ctx, id, 'BUG', `${text} (${where(ctx)})`)
  throw new KernelBug(id, text)
}

/**
 * DEBUG_LOCKS_WARN_ON(c) for a true c: turns debug_locks off; prints only if it was still
 * on, so at most once per boot across every lock-debugging check.
 */
export function debugLocksWarn(k: Kernel, ctx: Ctx, id: 'D1' | 'D2', cond: string): void {
  if (!k.debugLocks) return
  k.debugLocks = false
  k.flushCounters()
  record(k, ctx, id, 'LOCKDEP', `DEBUG_LOCKS_WARN_ON(${cond}) at ${SITES[id]} (${where(ctx)})`)
}

/** __schedule_bug: "scheduling while atomic" with the preempt count schedule() saw. */
export function schedulingWhileAtomic(k: Kernel, ctx: Ctx, count: number): void {
  k.flushCounters()
  const hex8 = count.toString(16).padStart(8, '0')
  record(k, ctx, 'S1', 'SCHED', `BUG: scheduling while atomic: ${ctx.task.name}/${ctx.task.pid}/0x${hex8}`)
}

/** One simulated second: __might_sleep prints at most once per HZ jiffies. */
const MIGHT_SLEEP_INTERVAL_NS = 1_000_000_000

/** The splat of __might_sleep (DEBUG_ATOMIC_SLEEP); the caller decided the context is invalid. */
export function sleepingInInvalidContext(k: Kernel, ctx: Ctx, site: string, inAtomic: boolean, irqsDisabled: boolean): void {
  if (k.lastMightSleepTs !== null && k.ts < k.lastMightSleepTs + MIGHT_SLEEP_INTERVAL_NS) return
  k.lastMightSleepTs = k.ts
  k.flushCounters()
  record(
    k,
    ctx,
    'S2',
    'SCHED',
    `BUG: sleeping function called from invalid context at ${site}\n` +
      `in_atomic(): ${inAtomic ? 1 : 0}, irqs_disabled(): ${irqsDisabled ? 1 : 0}, non_block: 0, pid: ${ctx.task.pid}, name: ${ctx.task.name}`,
  )
}
