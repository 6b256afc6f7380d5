/**
 * Names of the tasks a trace mentions, learnt from the trace itself (task_spawn and
 * task_fork carry the comm), the way a trace viewer learns them from the saved cmdlines.
 * The idle task is pid 0 on every CPU and is called swapper/N; the stopper thread has no
 * pid in the model (its sched_switch names it migration/N instead).
 */
import type { SimEvent } from '../sim/index.js'

export class TaskNames {
  private readonly names = new Map<number, string>()

  /** Feed every event through here, in order. */
  observe(e: SimEvent): void {
    if ((e.type === 'task_spawn' || e.type === 'task_fork') && typeof e.target === 'number' && typeof e.name === 'string')
      this.names.set(e.target, e.name)
  }

  /** The comm of `pid` running on `cpu` (the CPU decides which swapper pid 0 is). */
  name(pid: number, cpu: number): string {
    if (pid === 0) return `swapper/${cpu}`
    return this.names.get(pid) ?? `<${pid}>`
  }
}
