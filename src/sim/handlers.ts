/**
 * One handler per op. By the time a handler runs, the op is well formed and every refusal
 * (OpError) has been checked, so a handler only carries the op out.
 */
import { access, copyToUser, kmapToPage } from './access.js'
import { COST_NS } from './cost.js'
import { warnOnce } from './diag.js'
import { kmapAssertNomap, kmapLocalFork } from './highmem.js'
import { kmapAtomicPfn, kmapAtomicProt, kmapLocalPage, kmapLocalPfn, kunmapAtomic, kunmapLocal } from './highmem-internal.js'
import {
  ioMappingCreate,
  ioMappingMapAtomicWc,
  ioMappingMapLocalWc,
  ioMappingUnmapAtomic,
  ioMappingUnmapLocal,
} from './iomapping.js'
import type { Kernel } from './kernel.js'
import type { OpName, ParsedOp } from './ops.js'
import { kmap, kmapFlushUnused, kunmap, leavePoolQueue } from './pkmap.js'
import { mightSleep, pagefaultDisable, pagefaultEnable, preemptDisable, preemptEnable, preemptible } from './preempt.js'
import {
  blockSwitch,
  enqueue,
  migrateDisable,
  migrateEnable,
  placeNewTask,
  preemptSwitch,
  requestMove,
  scheduleDebug,
  stopperVisit,
  wakeUpProcess,
} from './sched.js'
import { KMAP_PROT, Task, type Ctx } from './task.js'

export type Result = Record<string, unknown>
/** ctx is null for machine-level ops; target is the task the op's refusal check found. */
export type Handler = (k: Kernel, ctx: Ctx | null, a: ParsedOp, target: Task | null) => Result

const EMPTY: Result = {}
const EBUSY = -16

function c(ctx: Ctx | null): Ctx {
  return ctx!
}

/** set_current_state(TASK_UNINTERRUPTIBLE); schedule(). */
function sleepCurrent(k: Kernel, ctx: Ctx, wait: Task['wait']): void {
  scheduleDebug(k, ctx)
  ctx.task.wait = wait
  k.emitCtx(ctx, 'task_sleep', { target: ctx.task.pid })
  blockSwitch(k, ctx.cpu, 'sleeping')
}

export const HANDLERS: Record<OpName, Handler> = {
  kmap_local_page: (k, ctx, a) => kmapLocalPage(k, c(ctx), a.page!, KMAP_PROT, 'kmap_local_page'),
  kmap_local_page_prot: (k, ctx, a) => kmapLocalPage(k, c(ctx), a.page!, a.prot!, 'kmap_local_page_prot'),
  kmap_local_pfn: (k, ctx, a) => kmapLocalPfn(k, c(ctx), a.pfn!, 'kmap_local_pfn'),
  kmap_atomic: (k, ctx, a) => kmapAtomicProt(k, c(ctx), a.page!, KMAP_PROT, 'kmap_atomic'),
  kmap_atomic_prot: (k, ctx, a) => kmapAtomicProt(k, c(ctx), a.page!, a.prot!, 'kmap_atomic_prot'),
  kmap_atomic_pfn: (k, ctx, a) => kmapAtomicPfn(k, c(ctx), a.pfn!, 'kmap_atomic_pfn'),
  kunmap_local: (k, ctx, a) => (kunmapLocal(k, c(ctx), a.addr!, 'kunmap_local'), EMPTY),
  kunmap_atomic: (k, ctx, a) => (kunmapAtomic(k, c(ctx), a.addr!, 'kunmap_atomic'), EMPTY),
  kmap: (k, ctx, a) => kmap(k, c(ctx), a.page!),
  kunmap: (k, ctx, a) => (kunmap(k, c(ctx), a.page!), EMPTY),
  kmap_flush_unused: (k, ctx) => (kmapFlushUnused(k, c(ctx)), EMPTY),
  kmap_to_page: (k, ctx, a) => kmapToPage(k, c(ctx), a.addr!),
  io_mapping_map_local_wc: (k, ctx, a) => ioMappingMapLocalWc(k, c(ctx), k.ioMappings.get(a.mapping!)!, a.offset!),
  io_mapping_map_atomic_wc: (k, ctx, a) => ioMappingMapAtomicWc(k, c(ctx), k.ioMappings.get(a.mapping!)!, a.offset!),
  io_mapping_unmap_local: (k, ctx, a) => (ioMappingUnmapLocal(k, c(ctx), a.addr!), EMPTY),
  io_mapping_unmap_atomic: (k, ctx, a) => (ioMappingUnmapAtomic(k, c(ctx), a.addr!), EMPTY),

  preempt_disable: (_k, ctx) => (preemptDisable(c(ctx)), EMPTY),
  preempt_enable: (k, ctx) => (preemptEnable(k, c(ctx)), EMPTY),
  migrate_disable: (k, ctx) => (migrateDisable(k, c(ctx)), EMPTY),
  migrate_enable: (k, ctx) => (migrateEnable(k, c(ctx)), EMPTY),
  pagefault_disable: (_k, ctx) => (pagefaultDisable(c(ctx)), EMPTY),
  pagefault_enable: (_k, ctx) => (pagefaultEnable(c(ctx)), EMPTY),
  local_irq_disable: (_k, ctx) => {
    const x = c(ctx)
    if (x.frame === null) x.cpu.irqsDisabled = true
    else x.frame.irqsDisabled = true
    return EMPTY
  },
  local_irq_enable: (_k, ctx) => {
    const x = c(ctx)
    if (x.frame === null) x.cpu.irqsDisabled = false
    else x.frame.irqsDisabled = false
    return EMPTY
  },
  might_sleep: (k, ctx) => (mightSleep(k, c(ctx), 'might_sleep()'), EMPTY),
  access: (k, ctx, a) => access(k, c(ctx), a.addr!, a.write ?? false),
  copy_to_user: (k, ctx, a) => copyToUser(k, c(ctx), a.bytes!, a.userPresent!),

  schedule: (k, ctx) => {
    const x = c(ctx)
    scheduleDebug(k, x)
    preemptSwitch(k, x.cpu)
    return EMPTY
  },
  sleep: (k, ctx) => (sleepCurrent(k, c(ctx), { kind: 'sleep' }), EMPTY),
  return_to_user: (k, ctx) => (kmapAssertNomap(k, c(ctx)), EMPTY),
  fork: (k, ctx, a) => {
    const x = c(ctx)
    const parent = x.task
    kmapLocalFork(k, x)
    const child = new Task(k.nextPid++, a.name!, parent.cpu, [...parent.cpusMask], k.layout.KM_MAX_IDX)
    k.tasks.set(child.pid, child)
    const cpu = child.cpusMask.includes(parent.cpu) ? parent.cpu : child.cpusMask[0]!
    k.emitCtx(x, 'task_fork', { target: child.pid, name: child.name, parent: parent.pid })
    enqueue(k, child, cpu)
    return { pid: child.pid }
  },
  exit: (k, ctx) => {
    const x = c(ctx)
    const t = x.task
    const i = k.pendingMoves.indexOf(t)
    if (i >= 0) k.pendingMoves.splice(i, 1)
    k.emitCtx(x, 'task_exit', { target: t.pid })
    for (const w of k.tasks.values()) {
      if (w.wait?.kind === 'affinity' && w.wait.target === t.pid) {
        w.lastResult = { ret: 0 }
        wakeUpProcess(k, w, t.pid, { ret: 0 })
      }
    }
    blockSwitch(k, x.cpu, 'dead')
    return EMPTY
  },
  sched_setaffinity: (k, ctx, a, target) => {
    const x = c(ctx)
    const t = target!
    mightSleep(k, x, 'kernel/sched/core.c:sched_setaffinity')
    const cpus = a.cpus!
    if (t === x.task && t.migrationDisabled > 0 && !cpus.includes(t.cpu)) {
      warnOnce(k, x, 'M2', `migrate-disabled task ${t.pid} excludes its own CPU ${t.cpu} from its affinity`)
      return { ret: EBUSY }
    }
    t.cpusMask = cpus
    k.emitCtx(x, 'affinity', { target: t.pid, cpus })
    if (cpus.includes(t.cpu)) return { ret: 0 }
    requestMove(k, t)
    // affine_move_task(): the stopper moves the task at once unless it is pinned (then the
    // move waits for its outermost migrate_enable, even while it sleeps) or cannot be
    // preempted yet; another task's caller waits for the move's completion.
    const targetCpu = k.cpu(t.cpu)
    const canPreempt = t.state !== 'running' || preemptible(k, targetCpu)
    if (t.migrationDisabled === 0 && canPreempt) return { ret: 0 }
    if (t === x.task) return { ret: 0 }
    if (t.state === 'running' && canPreempt) stopperVisit(k, targetCpu)
    sleepCurrent(k, x, { kind: 'affinity', target: t.pid })
    return { blocked: true }
  },

  spawn: (k, _ctx, a) => {
    const mask = a.cpus ?? k.cpus.map((cpu) => cpu.id)
    const cpu = a.cpu ?? placeNewTask(k, mask)
    const t = new Task(k.nextPid++, a.name!, cpu, mask, k.layout.KM_MAX_IDX)
    k.tasks.set(t.pid, t)
    k.emit('task_spawn', cpu, null, { target: t.pid, name: t.name, cpus: mask })
    enqueue(k, t, cpu)
    return { pid: t.pid }
  },
  io_mapping_create: (k, _ctx, a) => {
    const m = ioMappingCreate(k, a.base!, a.size!)
    const r: Result = { mapping: m.id }
    if (m.iomemVpn !== null) r.iomem = k.out[k.out.length - 1]!.iomem
    return r
  },
  preempt: (k, _ctx, a) => {
    const cpu = k.cpu(a.cpu!)
    if (!preemptible(k, cpu)) {
      cpu.needResched = true
      return { switched: false }
    }
    return { switched: preemptSwitch(k, cpu) }
  },
  switch_to: (k, _ctx, a, target) => {
    const cpu = k.cpu(a.cpu!)
    const t = target!
    if (cpu.curr === t) return { switched: false }
    if (t.cpu !== cpu.id) {
      // The load balancer pulls it over (only where cpus_ptr allows: checked before).
      const src = k.cpu(t.cpu)
      src.runqueue.splice(src.runqueue.indexOf(t), 1)
      k.emit('migrate', cpu.id, null, { target: t.pid, from: src.id, to: cpu.id })
      t.cpu = cpu.id
      cpu.runqueue.push(t)
    }
    cpu.reschedNext = t
    if (!preemptible(k, cpu)) {
      cpu.needResched = true
      return { switched: false }
    }
    return { switched: preemptSwitch(k, cpu) }
  },
  set_task_cpu: (k, _ctx, a, target) => {
    const t = target!
    const src = k.cpu(t.cpu)
    // set_task_cpu() has only a debug check against moving a migrate-disabled task.
    if (t.migrationDisabled > 0)
      warnOnce(k, { cpu: src, task: src.curr, frame: null }, 'M3', `set_task_cpu() moves migrate-disabled task ${t.pid}`)
    src.runqueue.splice(src.runqueue.indexOf(t), 1)
    k.emit('migrate', a.cpu!, null, { target: t.pid, from: src.id, to: a.cpu! })
    enqueue(k, t, a.cpu!)
    return EMPTY
  },
  wake: (k, _ctx, _a, target) => {
    const t = target!
    // A completion wait (sched_setaffinity) ignores wake-ups that do not complete it.
    if (t.state !== 'sleeping' || t.wait?.kind === 'affinity') return EMPTY
    if (t.wait?.kind === 'pkmap') leavePoolQueue(k, t.pid)
    wakeUpProcess(k, t, null)
    return EMPTY
  },
  irq_enter: (k, _ctx, a) => {
    const cpu = k.cpu(a.cpu!)
    const frame = { kind: a.kind ?? 'hardirq', irqsDisabled: a.irqsDisabled ?? true, preemptCount: 0 }
    cpu.irq.push(frame)
    k.emit('irq_enter', cpu.id, null, { kind: frame.kind, irqsDisabled: frame.irqsDisabled, task: cpu.curr.pid })
    k.advance(COST_NS.IRQ)
    return EMPTY
  },
  irq_exit: (k, _ctx, a) => {
    const cpu = k.cpu(a.cpu!)
    const frame = cpu.irq.pop()!
    k.emit('irq_exit', cpu.id, null, { kind: frame.kind, task: cpu.curr.pid })
    // irq_exit() takes back only its own offset: a preempt_disable the handler leaked stays
    // in the CPU's count, which the interrupted task then carries.
    cpu.curr.preemptCount += frame.preemptCount
    k.advance(COST_NS.IRQ)
    return EMPTY
  },
}

