import type { Handlers, MachineParams, RouteContext } from './types.js'

export function machineHandlers({ service }: RouteContext): Handlers {
  return {
    listMachines: async (req) => {
      const q = req.query as { after?: string; limit: number }
      return service.list(req.principal, q.after ?? '', q.limit)
    },
    createMachine: async (req, reply) => {
      reply.code(201)
      return service.create(req.principal, req.body)
    },
    getMachine: async (req) => service.get(req.principal, (req.params as MachineParams).id),
    deleteMachine: async (req, reply) => {
      await service.delete(req.principal, (req.params as MachineParams).id)
      return reply.code(204).send()
    },
    branchMachine: async (req, reply) => {
      const { seq } = req.body as { seq: number }
      const made = await service.branch(req.principal, (req.params as MachineParams).id, seq)
      reply.code(201)
      return made
    },
  }
}
