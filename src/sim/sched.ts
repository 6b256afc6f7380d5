/**
 * The scheduler as far as kmap_local sees it (kernel/sched/core.c): migrate_disable and
 * migrate_enable, the context switch with its kmap hooks, runqueues and placement,
 * wake-ups, affinity moves through the stopper, and the reschedule points.
 */
import { COST_NS } from './cost.js'
import { schedulingWhileAtomic, warnOnce } from './diag.js'
import { kmapLocalSchedIn, kmapLocalSchedOut } from './highmem.js'
import { KernelBug, type Kernel } from './kernel.js'
import { kmapHighResume } from './pkmap.js'
import { preemptDisable, preemptEnable, preemptible } from './preempt.js'
import type { Cpu, Ctx, Task, TaskState } from './task.js'

// ---------------------------------------------------------------- migrate_disable

/** migrate_disable(): pins current to this CPU; empty on a uniprocessor build. */
export function migrateDisable(k: Kernel, ctx: Ctx): void {
  if (!k.layout.smp) return
  const t = ctx.task
  if (t.migrationDisabled > 0) {
    t.migrationDisabled++
    return
  }
  preemptDisable(ctx)
  ctx.cpu.nrPinned++
  t.migrationDisabled = 1
  preemptEnable(k, ctx)
}

/**
 * migrate_enable(): the outermost call restores cpus_ptr and, if an affinity change
 * excluded this CPU meanwhile, lets the stopper move the task (at the reschedule point).
 */
export function migrateEnable(k: Kernel, ctx: Ctx): void {
  if (!k.layout.smp) return
  const t = ctx.task
  if (t.migrationDisabled > 1) {
    t.migrationDisabled--
    return
  }
  if (t.migrationDisabled === 0 && k.layout.behaviour.migrateEnableUnderflowWarns) {
    warnOnce(k, ctx, 'M1', 'migrate_enable() with migration_disabled == 0')
    return
  }
  // Before 5.17 an unbalanced call falls through: migration_disabled stays 0 and the
  // unsigned rq->nr_pinned wraps around.
  preemptDisable(ctx)
  t.cpusPtrPinned = null
  t.migrationDisabled = 0
  ctx.cpu.nrPinned = (ctx.cpu.nrPinned - 1) >>> 0
  if (!t.cpusMask.includes(ctx.cpu.id)) requestMove(k, t)
  preemptEnable(k, ctx)
}

// ---------------------------------------------------------------- context switch

/**
 * The outgoing half of __schedule(): migrate_disable_switch, then prepare_task_switch's
 * kmap hook. A pinned task leaving the CPU may only come back to it.
 */
function switchOut(k: Kernel, cpu: Cpu, prev: Task): void {
  k.flushCounters()
  if (prev.migrationDisabled > 0 && prev.cpusPtrPinned === null && k.layout.smp) prev.cpusPtrPinned = cpu.id
  if (prev.kmapCtrl.idx !== 0) kmapLocalSchedOut(k, cpu, prev)
}

/** The incoming half: finish_task_switch's kmap hook, then any blocking op to finish. */
function switchIn(k: Kernel, cpu: Cpu, next: Task): void {
  if (next.kmapCtrl.idx !== 0) kmapLocalSchedIn(k, cpu, next)
  if (next.resume !== null) k.resumeQueue.push(next)
}

/**
 * __schedule() switching `cpu` from its current task to `next`. The caller has taken
 * `next` off the runqueue and decides where the previous task goes.
 */
export function contextSwitch(k: Kernel, cpu: Cpu, next: Task, prevState: TaskState): void {
  const prev = cpu.curr
  switchOut(k, cpu, prev)
  if (!prev.isIdle) prev.state = prevState
  k.push({ seq: k.nextSeq(), ts: k.ts, type: 'sched_switch', cpu: cpu.id, pid: prev.pid, prevPid: prev.pid, prevState, nextPid: next.pid })
  k.advance(COST_NS.CONTEXT_SWITCH)
  cpu.curr = next
  next.state = 'running'
  next.cpu = cpu.id
  // finish_task_switch() runs with interrupts enabled again; need_resched was consumed.
  cpu.irqsDisabled = false
  cpu.needResched = false
  cpu.reschedNext = null
  switchIn(k, cpu, next)
}

/**
 * stop_one_cpu() for an affinity change of a running, migrate-disabled task: the CPU's
 * stopper thread (migration/N, not a task of ours, so it has no pid) preempts the task,
 * finds it pinned, leaves the move pending and switches straight back. The switch-out is
 * what narrows the task's cpus_ptr, and its kmaps go out and come back in.
 */
export function stopperVisit(k: Kernel, cpu: Cpu): void {
  const t = cpu.curr
  const stopper = `migration/${cpu.id}`
  switchOut(k, cpu, t)
  k.emit('sched_switch', cpu.id, t.pid, { prevPid: t.pid, prevState: 'runnable', nextPid: null, nextName: stopper })
  k.advance(COST_NS.CONTEXT_SWITCH)
  k.emit('sched_switch', cpu.id, null, { prevPid: null, prevName: stopper, prevState: 'sleeping', nextPid: t.pid })
  k.advance(COST_NS.CONTEXT_SWITCH)
  switchIn(k, cpu, t)
}

function pickNext(cpu: Cpu): Task {
  const hint = cpu.reschedNext
  if (hint !== null) {
    const i = cpu.runqueue.indexOf(hint)
    if (i >= 0) return cpu.runqueue.splice(i, 1)[0]!
  }
  return cpu.runqueue.shift() ?? cpu.idle
}

/** Preemption: the current task goes to the runqueue's tail. False if nobody else is runnable. */
export function preemptSwitch(k: Kernel, cpu: Cpu): boolean {
  if (cpu.runqueue.length === 0) {
    cpu.needResched = false
    return false
  }
  const prev = cpu.curr
  contextSwitch(k, cpu, pickNext(cpu), 'runnable')
  if (!prev.isIdle) cpu.runqueue.push(prev)
  return true
}

/** The current task leaves the CPU without staying runnable (it sleeps, or it died). */
export function blockSwitch(k: Kernel, cpu: Cpu, prevState: 'sleeping' | 'dead'): void {
  contextSwitch(k, cpu, pickNext(cpu), prevState)
}

/**
 * schedule_debug(): "scheduling while atomic" when the preempt count is above schedule()'s
 * own level; the count is then reset. From an interrupt the switch would be fatal: halt.
 */
export function scheduleDebug(k: Kernel, ctx: Ctx): void {
  const count = k.preemptCountOf(ctx.cpu) + 1 // schedule() adds PREEMPT_DISABLE_OFFSET
  if (count === 1) return
  schedulingWhileAtomic(k, ctx, count)
  if (ctx.frame !== null) throw new KernelBug('S1', 'scheduling while atomic in interrupt context')
  ctx.task.preemptCount = 0
}

// ---------------------------------------------------------------- placement

/** Puts a runnable task on `cpuId`: switched in at once if that CPU idles, else queued. */
export function enqueue(k: Kernel, task: Task, cpuId: number): void {
  const cpu = k.cpu(cpuId)
  task.cpu = cpuId
  task.state = 'runnable'
  if (cpu.curr.isIdle && cpu.runqueue.length === 0) {
    if (cpu.irq.length === 0) {
      contextSwitch(k, cpu, task, 'runnable')
      return
    }
    cpu.needResched = true // the idle CPU switches at irq_exit
  }
  cpu.runqueue.push(task)
}

/** The CPU a woken task goes to (select_task_rq through cpus_ptr). */
function selectTaskRq(task: Task): number {
  const allowed = task.cpusAllowed()
  if (task.migrationDisabled > 0 || allowed.includes(task.cpu)) return task.cpu
  return allowed[0]!
}

/** try_to_wake_up(): a sleeping task becomes runnable; `actor` is the waking pid. */
export function wakeUpProcess(k: Kernel, task: Task, actor: number | null, fields?: Record<string, unknown>): void {
  if (task.state !== 'sleeping') return
  task.wait = null
  const to = selectTaskRq(task)
  k.emit('task_wake', to, actor, { target: task.pid, ...fields })
  if (to !== task.cpu) k.emit('migrate', to, actor, { target: task.pid, from: task.cpu, to })
  enqueue(k, task, to)
}

/** First CPU of the mask for a fresh task: an idle one, else the shortest runqueue. */
export function placeNewTask(k: Kernel, allowed: number[]): number {
  const idle = allowed.find((c) => k.cpu(c).curr.isIdle && k.cpu(c).runqueue.length === 0)
  if (idle !== undefined) return idle
  let best = allowed[0]!
  for (const c of allowed) if (k.cpu(c).runqueue.length < k.cpu(best).runqueue.length) best = c
  return best
}

// ---------------------------------------------------------------- affinity moves

/** Queues a stopper move of `task` to its allowed mask (affine_move_task). */
export function requestMove(k: Kernel, task: Task): void {
  if (!k.pendingMoves.includes(task)) k.pendingMoves.push(task)
}

/** Whether the stopper can move the task now: not pinned, and off-CPU or preemptible. */
function movable(k: Kernel, t: Task): boolean {
  if (t.migrationDisabled > 0) return false
  return t.state !== 'running' || preemptible(k, k.cpu(t.cpu))
}

/** migration_cpu_stop / move_queued_task: takes the task off its CPU and places it. */
function moveTask(k: Kernel, t: Task): void {
  const src = k.cpu(t.cpu)
  if (!t.cpusMask.includes(t.cpu) && t.state !== 'sleeping' && t.state !== 'dead') {
    const dest = t.cpusMask[0]!
    if (t.state === 'running') contextSwitch(k, src, pickNext(src), 'runnable')
    else src.runqueue.splice(src.runqueue.indexOf(t), 1)
    k.emit('migrate', dest, null, { target: t.pid, from: src.id, to: dest })
    enqueue(k, t, dest)
  }
  // A sleeping task needs no move: its wake-up picks an allowed CPU.
  for (const waiter of [...k.tasks.values()]) {
    if (waiter.wait?.kind === 'affinity' && waiter.wait.target === t.pid) {
      waiter.lastResult = { ret: 0 }
      wakeUpProcess(k, waiter, null, { ret: 0 })
    }
  }
}

/** Whether anything waits for a reschedule point: after most ops nothing does, cheaply told. */
function pending(k: Kernel): boolean {
  if (k.pendingMoves.length > 0 || k.resumeQueue.length > 0) return true
  for (let c = 0; c < k.cpus.length; c++) if (k.cpus[c]!.needResched) return true
  return false
}

/**
 * Runs what the op left pending, as the kernel would at its reschedule points: stopper
 * moves, need_resched switches on CPUs that became preemptible, and blocking ops of
 * tasks that were switched back in.
 */
export function settle(k: Kernel): void {
  if (!pending(k)) return
  for (let progress = true; progress; ) {
    progress = false
    if (k.pendingMoves.length > 0) {
      for (const t of [...k.pendingMoves]) {
        if (!movable(k, t)) continue
        k.pendingMoves.splice(k.pendingMoves.indexOf(t), 1)
        moveTask(k, t)
        progress = true
      }
    }
    for (const cpu of k.cpus) {
      if (cpu.needResched && preemptible(k, cpu)) progress = preemptSwitch(k, cpu) || progress
    }
    while (k.resumeQueue.length > 0) {
      const t = k.resumeQueue.shift()!
      const cpu = k.cpu(t.cpu)
      if (t.resume === null || cpu.curr !== t) continue
      const resume = t.resume
      t.resume = null
      const ctx: Ctx = { cpu, task: t, frame: null }
      k.watch(ctx)
      switch (resume.kind) {
        case 'kmap_high':
          kmapHighResume(k, ctx, resume.pfn)
      }
      k.flushCounters()
      progress = true
    }
  }
}
