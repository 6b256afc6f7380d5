/** The in-process executor: a scenario run on a Machine of src/sim. */
import { createMachine, InvalidOpError, OpError, type Machine } from '../sim/index.js'
import { OpRefusal, type Applied, type Executor, type ExecutorFactory } from './executor.js'

export class LocalExecutor implements Executor {
  constructor(private readonly machine: Machine) {}

  async apply(op: Record<string, unknown>): Promise<Applied> {
    try {
      return this.machine.apply(op)
    } catch (e) {
      if (e instanceof OpError) throw new OpRefusal(e.code, e.message)
      if (e instanceof InvalidOpError) throw new OpRefusal('invalid_op', e.message)
      throw e
    }
  }

  async state() {
    return this.machine.state()
  }
}

export const localExecutor: ExecutorFactory = async (machine) => new LocalExecutor(createMachine(machine))
