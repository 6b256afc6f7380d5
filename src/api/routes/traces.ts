// Reading machines: state (now or replayed to a past seq), tasks, and the stored trace.
import { notFound } from '../../service/errors.js'
import type { Handlers, MachineParams, RouteContext } from './types.js'

interface Task {
  pid: number
}

export function traceHandlers({ service }: RouteContext): Handlers {
  const tasksOf = async (principal: string, id: string): Promise<Task[]> =>
    ((await service.state(principal, id)) as { tasks: Task[] }).tasks

  return {
    getState: async (req) => {
      const { at } = req.query as { at?: number }
      return service.state(req.principal, (req.params as MachineParams).id, at)
    },
    listTasks: async (req) => ({ tasks: await tasksOf(req.principal, (req.params as MachineParams).id) }),
    getTask: async (req) => {
      const { id, pid } = req.params as MachineParams & { pid: number }
      const task = (await tasksOf(req.principal, id)).find((t) => t.pid === pid)
      if (!task) throw notFound(`task ${pid} of machine ${id}`)
      return task
    },
    listEvents: async (req, reply) => {
      const q = req.query as { after?: number; limit: number; type?: string[]; cpu?: number[]; pid?: number[] }
      const page = await service.events(req.principal, (req.params as MachineParams).id, {
        after: q.after ?? 0,
        limit: q.limit,
        ...(q.type ? { types: q.type } : {}),
        ...(q.cpu ? { cpus: q.cpu } : {}),
        ...(q.pid ? { pids: q.pid } : {}),
      })
      // The events are stored as JSON text: splice them in rather than parse and re-serialise.
      const next = page.length === q.limit ? (JSON.parse(page.at(-1)!) as { seq: number }).seq : null
      return reply.type('application/json; charset=utf-8').send(`{"events":[${page.join(',')}],"next":${next}}`)
    },
  }
}
