/**
 * The library entry (contract section 1): a Machine applies one op at a time. Every refusal
 * is decided before anything changes, so a refused op leaves the machine exactly as it was;
 * a BUG, by contrast, is kernel behaviour: it is traced and halts the machine.
 */
import { parseConfig, type EffectiveConfig } from './config.js'
import { InvalidOpError, OpError } from './errors.js'
import { HANDLERS, type Refs, type Result } from './handlers.js'
import { Kernel, KernelBug, type SimEvent } from './kernel.js'
import { parseOp, type ParsedOp } from './ops.js'
import { settle } from './sched.js'
import { buildState, type State } from './state.js'
import type { Ctx, Task } from './task.js'

export interface ApplyResult {
  result: Result
  events: SimEvent[]
}

export class Machine {
  readonly config: EffectiveConfig
  private readonly k: Kernel

  constructor(input: unknown) {
    const { layout, effective } = parseConfig(input)
    this.config = effective
    this.k = new Kernel(layout)
  }

  apply(op: unknown): ApplyResult {
    const k = this.k
    if (k.status === 'halted') throw new OpError('halted', `the machine is halted: ${k.haltReason}`)
    const p = parseOp(k.layout, op)
    const { ctx, refs } = this.resolve(p)
    k.opStart()
    k.watch(ctx)
    let result: Result
    try {
      result = HANDLERS[p.op](k, ctx, p.args, refs)
      k.flushCounters()
      k.watched = null
      settle(k)
    } catch (e) {
      if (!(e instanceof KernelBug)) throw e
      k.watched = null
      k.status = 'halted'
      k.haltReason = e.text
      k.emit('halt', ctx?.cpu.id ?? null, null, { reason: e.text })
      result = { bug: e.id }
    }
    return { result, events: k.out }
  }

  state(): State {
    return buildState(this.k)
  }

  // ------------------------------------------------------------ refusals

  private task(pid: number, field: string): Task {
    if (pid === 0) throw new OpError('no_such_task', `${field} 0 is the idle task (swapper), which takes no ops`)
    const t = this.k.tasks.get(pid)
    if (t === undefined) throw new OpError('no_such_task', `no task with ${field} ${pid}`)
    return t
  }

  private liveTask(pid: number, field: string): Task {
    const t = this.task(pid, field)
    if (t.state === 'dead') throw new OpError('task_dead', `task ${pid} has exited`)
    return t
  }

  /** The context of a task-context op: the task must be executing, not interrupted. */
  private taskCtx(pid: number): Ctx {
    const t = this.liveTask(pid, 'pid')
    if (t.state === 'sleeping') throw new OpError('task_blocked', `task ${pid} is sleeping; wake it first`)
    if (t.state === 'runnable') throw new OpError('not_running', `task ${pid} is runnable on CPU ${t.cpu} but not current there`)
    const cpu = this.k.cpu(t.cpu)
    if (cpu.irq.length > 0)
      throw new OpError('in_irq', `CPU ${cpu.id} is in an interrupt: task ${pid} is not executing; name "cpu" to run in the interrupt`)
    return { cpu, task: t, frame: null }
  }

  private irqCtx(c: number): Ctx {
    const cpu = this.k.cpu(c)
    const frame = cpu.irq[cpu.irq.length - 1]
    if (frame === undefined) throw new OpError('not_in_irq', `CPU ${c} is not in an interrupt (use irq_enter, or name the task's pid)`)
    return { cpu, task: cpu.curr, frame }
  }

  private resolve(p: ParsedOp): { ctx: Ctx | null; refs: Refs } {
    const a = p.args
    const ctx = p.at === null ? null : 'pid' in p.at ? this.taskCtx(p.at.pid) : this.irqCtx(p.at.cpu)
    const refs: Refs = {}
    switch (p.op) {
      case 'io_mapping_map_local_wc':
      case 'io_mapping_map_atomic_wc':
        if (!this.k.ioMappings.has(a.mapping!)) throw new OpError('no_such_mapping', `no io_mapping ${a.mapping}`)
        break
      case 'sched_setaffinity':
        refs.task = this.liveTask(a.target!, 'target')
        break
      case 'switch_to': {
        const t = (refs.task = this.liveTask(a.pid!, 'pid'))
        if (t.state === 'sleeping') throw new OpError('task_blocked', `task ${t.pid} is sleeping`)
        if (t.state === 'running' && t.cpu !== a.cpu) throw new OpError('not_runnable', `task ${t.pid} is running on CPU ${t.cpu}`)
        if (t.state === 'runnable' && !t.cpusAllowed().includes(a.cpu!))
          throw new OpError('not_allowed', `task ${t.pid} may not run on CPU ${a.cpu} (cpus_ptr ${t.cpusAllowed().join(',')})`)
        break
      }
      case 'set_task_cpu': {
        const t = (refs.task = this.liveTask(a.pid!, 'pid'))
        if (t.state !== 'runnable') throw new OpError('not_runnable', `task ${t.pid} is ${t.state}; set_task_cpu() moves queued tasks`)
        break
      }
      case 'wake':
        refs.task = this.task(a.pid!, 'pid')
        break
      case 'irq_exit':
        this.irqCtx(a.cpu!)
        break
      case 'spawn':
        if (a.cpu !== undefined && a.cpus !== undefined && !a.cpus.includes(a.cpu))
          throw new InvalidOpError('cpu', 'must be one of "cpus"')
        break
    }
    return { ctx, refs }
  }
}

export function createMachine(config: unknown): Machine {
  return new Machine(config)
}
