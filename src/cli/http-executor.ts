/**
 * The scenario runner's Executor over the HTTP API: each scenario run gets a fresh machine
 * on the server. A refused op comes back as the contract's refusal (409 with its code, or
 * 400 for a malformed op, which scenarios call `invalid_op`), exactly as the in-process
 * executor reports it, so a scenario passes or fails the same way in both places.
 */
import type { Applied, Executor, ExecutorFactory } from '../scenario/executor.js'
import { OpRefusal } from '../scenario/executor.js'
import type { SimEvent, State } from '../sim/index.js'
import { ApiError, type Client } from './client.js'
import { CliError, EXIT } from './errors.js'
import { machinePath, type MachineInfo } from './commands/machine.js'

class HttpExecutor implements Executor {
  constructor(
    private readonly client: Client,
    readonly id: string,
  ) {}

  async apply(op: Record<string, unknown>): Promise<Applied> {
    try {
      const r = await this.client.post<{ result: Record<string, unknown>; events: SimEvent[] }>(machinePath(this.id, '/ops'), op)
      return { result: r.result, events: r.events }
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) throw new OpRefusal(err.code, err.detail)
      if (err instanceof ApiError && err.status === 400) throw new OpRefusal('invalid_op', err.detail)
      throw err
    }
  }

  state(): Promise<State> {
    return this.client.get<State>(machinePath(this.id, '/state'))
  }
}

/** Makes executors on fresh server machines and remembers their ids (to report or delete them). */
export function httpExecutors(client: Client): { factory: ExecutorFactory; machines: string[] } {
  const machines: string[] = []
  const factory: ExecutorFactory = async (config) => {
    let m: MachineInfo
    try {
      m = await client.post<MachineInfo>('/v1/machines', config)
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) throw new CliError(`the scenario's machine config was refused: ${err.detail}${err.field ? ` (machine.${err.field})` : ''}`, EXIT.failed)
      throw err
    }
    machines.push(m.id)
    return new HttpExecutor(client, m.id)
  }
  return { factory, machines }
}
