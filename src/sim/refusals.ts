/**
 * The refusals (OpError) an op's well-formed fields can still earn from the machine's
 * state: its calling context must exist and be executing, and the tasks or mappings it
 * names must be there. They run before the op changes anything.
 */
import { InvalidOpError, OpError } from './errors.js'
import type { Kernel } from './kernel.js'
import type { OpName, ParsedOp, Where } from './ops.js'
import type { Ctx, Task } from './task.js'

function task(k: Kernel, pid: number, field: string): Task {
  if (pid === 0) throw new OpError('no_such_task', `${field} 0 is the idle task (swapper), which takes no ops`)
  const t = k.tasks.get(pid)
  if (t === undefined) throw new OpError('no_such_task', `no task with ${field} ${pid}`)
  return t
}

function liveTask(k: Kernel, pid: number, field: string): Task {
  const t = task(k, pid, field)
  if (t.state === 'dead') throw new OpError('task_dead', `task ${pid} has exited`)
  return t
}

/** The context of a task-context op: the task must be executing, not interrupted. */
function taskCtx(k: Kernel, pid: number): Ctx {
  const t = liveTask(k, pid, 'pid')
  if (t.state === 'sleeping') throw new OpError('task_blocked', `task ${pid} is sleeping; wake it first`)
  if (t.state === 'runnable') throw new OpError('not_running', `task ${pid} is runnable on CPU ${t.cpu} but not current there`)
  const cpu = k.cpu(t.cpu)
  if (cpu.irq.length > 0)
    throw new OpError('in_irq', `CPU ${cpu.id} is in an interrupt: task ${pid} is not executing; name "cpu" to run in the interrupt`)
  return { cpu, task: t, frame: null }
}

function irqCtx(k: Kernel, c: number): Ctx {
  const cpu = k.cpu(c)
  const frame = cpu.irq[cpu.irq.length - 1]
  if (frame === undefined) throw new OpError('not_in_irq', `CPU ${c} is not in an interrupt (use irq_enter, or name the task's pid)`)
  return { cpu, task: cpu.curr, frame }
}

/** The context a task or process op runs in, named by its `pid` or `cpu`; null for a machine op. */
export function callingCtx(k: Kernel, where: Where, p: ParsedOp): Ctx | null {
  if (where === 'machine') return null
  return p.pid !== undefined ? taskCtx(k, p.pid) : irqCtx(k, p.cpu!)
}

/** An op's own check of the state; returns the task it names, if it names one. */
export type Refusal = (k: Kernel, p: ParsedOp) => Task | null

export const REFUSALS: Partial<Record<OpName, Refusal>> = {
  io_mapping_map_local_wc: mappingExists,
  io_mapping_map_atomic_wc: mappingExists,
  sched_setaffinity: (k, p) => liveTask(k, p.target!, 'target'),
  switch_to: (k, p) => {
    const t = liveTask(k, p.pid!, 'pid')
    if (t.state === 'sleeping') throw new OpError('task_blocked', `task ${t.pid} is sleeping`)
    if (t.state === 'running' && t.cpu !== p.cpu) throw new OpError('not_runnable', `task ${t.pid} is running on CPU ${t.cpu}`)
    if (t.state === 'runnable' && !t.cpusAllowed().includes(p.cpu!))
      throw new OpError('not_allowed', `task ${t.pid} may not run on CPU ${p.cpu} (cpus_ptr ${t.cpusAllowed().join(',')})`)
    return t
  },
  set_task_cpu: (k, p) => {
    const t = liveTask(k, p.pid!, 'pid')
    if (t.state !== 'runnable') throw new OpError('not_runnable', `task ${t.pid} is ${t.state}; set_task_cpu() moves queued tasks`)
    return t
  },
  wake: (k, p) => task(k, p.pid!, 'pid'),
  irq_exit: (k, p) => {
    irqCtx(k, p.cpu!)
    return null
  },
  spawn: (_k, p) => {
    if (p.cpu !== undefined && p.cpus !== undefined && !p.cpus.includes(p.cpu)) throw new InvalidOpError('cpu', 'must be one of "cpus"')
    return null
  },
}

function mappingExists(k: Kernel, p: ParsedOp): null {
  if (!k.ioMappings.has(p.mapping!)) throw new OpError('no_such_mapping', `no io_mapping ${p.mapping}`)
  return null
}
