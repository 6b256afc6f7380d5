/**
 * ftrace text, as /sys/kernel/tracing/trace (and `trace-cmd report` users) show it: the
 * `# tracer: nop` header, then one line per event in the kernel's trace_print_context
 * layout, `%16s-%-7d [%03d] <5 latency flags> %5lu.%06lu: <event>: <fields>`.
 * sched_switch uses the tracepoint's exact field format; every other model event is
 * written as a tracing_mark_write line (what a test harness writing to trace_marker would
 * leave), `<type> key=value ...`.
 */
import type { SimEvent } from '../sim/index.js'
import type { EventSource } from './source.js'
import { TaskNames } from './task-names.js'

const HEADER = `# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
`

/**
 * The stopper thread has no pid in the model. Real migration/N threads have ordinary pids;
 * we print PID_MAX_LIMIT + N, which no task can have, so the column stays numeric.
 */
const PID_MAX_LIMIT = 4 * 1024 * 1024
/** Normal tasks and the idle task run at prio 120; the stopper is SCHED_FIFO 99, prio 0. */
const NORMAL_PRIO = 120
const STOPPER_PRIO = 0

/** The contract's task states as the tracepoint prints prev_state. */
const PREV_STATE: Record<string, string> = {
  runnable: 'R',
  sleeping: 'D', // the model's sleeps are TASK_UNINTERRUPTIBLE (pool wait, completions)
  dead: 'Z', // exit_state is EXIT_ZOMBIE until the parent reaps it
}

interface IrqFrame {
  kind: string
  irqsDisabled: boolean
}

/** What the context columns need: who runs on each CPU, open interrupts, task counters. */
class Context {
  readonly names = new TaskNames()
  private readonly current = new Map<number, { pid: number | null; comm: string }>()
  private readonly irqs = new Map<number, IrqFrame[]>()
  private readonly preempt = new Map<number, number>()
  private readonly migrate = new Map<number, number>()

  observe(e: SimEvent): void {
    this.names.observe(e)
    const cpu = e.cpu ?? 0
    if (e.type === 'irq_enter') {
      const stack = this.irqs.get(cpu) ?? []
      stack.push({ kind: String(e.kind), irqsDisabled: e.irqsDisabled === true })
      this.irqs.set(cpu, stack)
    } else if (e.type === 'irq_exit') {
      this.irqs.get(cpu)?.pop()
    } else if (e.type === 'sched_switch') {
      const next = e.nextPid as number | null
      this.current.set(cpu, { pid: next, comm: next === null ? String(e.nextName) : this.names.name(next, cpu) })
    } else if (e.type === 'counter') {
      // In interrupt context preemptCount is the interrupt's own count: keep the task's.
      const task = e.pid ?? (e.task as number)
      if (e.pid !== null && typeof e.preemptCount === 'number') this.preempt.set(task, e.preemptCount)
      if (typeof e.migrationDisabled === 'number') this.migrate.set(task, e.migrationDisabled)
    }
  }

  /** The task column: comm and pid of whoever is current on the CPU. */
  task(cpu: number): { pid: number; comm: string } {
    const c = this.current.get(cpu)
    if (c === undefined) return { pid: 0, comm: '<idle>' }
    if (c.pid === null) return { pid: PID_MAX_LIMIT + cpu, comm: c.comm }
    return { pid: c.pid, comm: c.pid === 0 ? '<idle>' : c.comm }
  }

  /** The five latency columns: irqs-off, need-resched, hard/softirq, preempt depth, migrate-disable. */
  flags(cpu: number): string {
    const stack = this.irqs.get(cpu) ?? []
    const top = stack[stack.length - 1]
    const irqsOff = top?.irqsDisabled === true ? 'd' : '.'
    const hard = stack.some((f) => f.kind === 'hardirq')
    const soft = stack.some((f) => f.kind === 'softirq')
    const irq = hard && soft ? 'H' : hard ? 'h' : soft ? 's' : '.'
    const pid = this.current.get(cpu)?.pid ?? 0 // the stopper (no pid) counts as idle: no counters
    const pc = this.preempt.get(pid) ?? 0
    const mig = this.migrate.get(pid) ?? 0
    const depth = pc === 0 ? '.' : Math.min(pc, 15).toString(16)
    const migrate = mig === 0 ? '.' : String(Math.min(mig, 9))
    return `${irqsOff}.${irq}${depth}${migrate}`
  }
}

function timestamp(ns: number): string {
  const us = Math.floor(ns / 1000)
  return `${String(Math.floor(us / 1e6)).padStart(5)}.${String(us % 1e6).padStart(6, '0')}`
}

function line(ctx: Context, cpu: number, ts: number, event: string, body: string): string {
  const t = ctx.task(cpu)
  const head = `${t.comm.padStart(16)}-${String(t.pid).padEnd(7)} [${String(cpu).padStart(3, '0')}] ${ctx.flags(cpu)}`
  return `${head} ${timestamp(ts)}: ${event}: ${body}\n`
}

function schedSwitchBody(ctx: Context, e: SimEvent, cpu: number): string {
  const side = (pid: unknown, name: unknown) => {
    if (typeof pid === 'number') return { comm: ctx.names.name(pid, cpu), pid, prio: NORMAL_PRIO }
    return { comm: String(name), pid: PID_MAX_LIMIT + cpu, prio: STOPPER_PRIO }
  }
  const prev = side(e.prevPid, e.prevName)
  const next = side(e.nextPid, e.nextName)
  // The stopper goes back to waiting for work interruptibly.
  const state = e.prevPid === null ? 'S' : (PREV_STATE[String(e.prevState)] ?? 'R')
  return (
    `prev_comm=${prev.comm} prev_pid=${prev.pid} prev_prio=${prev.prio} prev_state=${state} ==> ` +
    `next_comm=${next.comm} next_pid=${next.pid} next_prio=${next.prio}`
  )
}

const OMITTED = new Set(['seq', 'ts', 'type', 'cpu'])
const PLAIN = /^[\x21-\x7e]+$/

function value(key: string, v: unknown): string {
  if (typeof v === 'number') return key === 'pfn' ? '0x' + v.toString(16) : String(v)
  if (typeof v === 'string') return PLAIN.test(v) && !v.includes('"') ? v : JSON.stringify(v)
  return JSON.stringify(v) ?? 'null'
}

/**
 * `<type> key=value ...`: every field but the ones the context columns already show, then
 * seq. A null pid (interrupt or machine context) is left out; `task` then names the task.
 */
function markBody(e: SimEvent): string {
  let body = e.type
  for (const [k, v] of Object.entries(e)) if (!OMITTED.has(k) && !(k === 'pid' && v === null)) body += ` ${k}=${value(k, v)}`
  return `${body} seq=${e.seq}`
}

export async function* encodeFtrace(events: EventSource): AsyncGenerator<string, void, undefined> {
  yield HEADER
  const ctx = new Context()
  for await (const e of events) {
    const cpu = e.cpu ?? 0
    // Each line shows the context the event happened in: inside the interrupt for both
    // irq_enter and irq_exit, the previous task for a sched_switch.
    if (e.type === 'irq_enter') ctx.observe(e)
    if (e.type === 'sched_switch') yield line(ctx, cpu, e.ts, 'sched_switch', schedSwitchBody(ctx, e, cpu))
    else yield line(ctx, cpu, e.ts, 'tracing_mark_write', markBody(e))
    if (e.type !== 'irq_enter') ctx.observe(e)
  }
}
