import type { FastifyReply, FastifyRequest } from 'fastify'
import type { MachineService } from '../../service/machines.js'

export type Handler = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>

/** Route handlers by the operationId that openapi.yaml gives them. */
export type Handlers = Record<string, Handler>

export interface RouteContext {
  service: MachineService
  maxBatch: number
}

/** What validation guarantees about path parameters (the spec's schemas have run). */
export interface MachineParams {
  id: string
}
