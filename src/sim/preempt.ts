/**
 * preempt_count, pagefault_disable and interrupt-flag helpers (include/linux/preempt.h,
 * include/linux/uaccess.h). An op in interrupt context counts in its frame; in task
 * context in the task.
 */
import { debugLocksWarn, sleepingInInvalidContext } from './diag.js'
import type { Kernel } from './kernel.js'
import type { Cpu, Ctx } from './task.js'

export function preemptDisable(ctx: Ctx): void {
  if (ctx.frame === null) ctx.task.preemptCount++
  else ctx.frame.preemptCount++
}

/**
 * preempt_enable(): a reschedule point. With DEBUG_PREEMPT an underflow is refused by
 * preempt_count_sub's DEBUG_LOCKS_WARN_ON (D2), e.g. after "scheduling while atomic"
 * reset the count under a kmap_atomic section.
 */
export function preemptEnable(k: Kernel, ctx: Ctx): void {
  const holder = ctx.frame ?? ctx.task
  if (holder.preemptCount === 0) {
    debugLocksWarn(k, ctx, 'D2', 'val > preempt_count()')
    return
  }
  holder.preemptCount--
}

/** in_atomic(): preempt_count() != 0 (interrupt offsets included). */
export function inAtomic(k: Kernel, ctx: Ctx): boolean {
  return k.preemptCountOf(ctx.cpu) !== 0
}

export function irqsDisabled(ctx: Ctx): boolean {
  return ctx.frame === null ? ctx.cpu.irqsDisabled : ctx.frame.irqsDisabled
}

/** in_hardirq(): any hard-interrupt frame is open on this CPU. */
export function inHardirq(ctx: Ctx): boolean {
  return ctx.cpu.irq.some((f) => f.kind === 'hardirq')
}

/** Whether full preemption may switch this CPU's task now. */
export function preemptible(k: Kernel, cpu: Cpu): boolean {
  return cpu.irq.length === 0 && !cpu.irqsDisabled && k.preemptCountOf(cpu) === 0
}

export function pagefaultDisable(ctx: Ctx): void {
  ctx.task.pagefaultDisabled++
}

/** pagefault_enable(): a plain decrement, unchecked in the kernel too. */
export function pagefaultEnable(ctx: Ctx): void {
  ctx.task.pagefaultDisabled--
}

/** faulthandler_disabled(): pagefault_disabled() || in_atomic(). */
export function faulthandlerDisabled(k: Kernel, ctx: Ctx): boolean {
  return ctx.task.pagefaultDisabled !== 0 || inAtomic(k, ctx)
}

/** might_sleep() with DEBUG_ATOMIC_SLEEP: splat S2 in atomic context or with irqs off. */
export function mightSleep(k: Kernel, ctx: Ctx, site: string): void {
  const atomic = inAtomic(k, ctx)
  const off = irqsDisabled(ctx)
  if (!atomic && !off) return
  sleepingInInvalidContext(k, ctx, site, atomic, off)
}
