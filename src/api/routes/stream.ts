// GET /v1/machines/{id}/stream: the machine's events, live, over a WebSocket (docs/stream.md).
// Access is checked before the upgrade, so a refusal is a plain HTTP status; after it, each
// socket is a StreamSession.
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { MachineService } from '../../service/machines.js'
import { HttpError } from '../errors.js'
import type { StreamSettings } from '../settings.js'
import type { OpRequest } from '../stream/protocol.js'
import type { StreamRegistry } from '../stream/registry.js'
import { StreamSession } from '../stream/session.js'
import { compileStrict, describeValidation } from '../validation.js'
import { batchBody, singleBody } from './ops.js'
import type { Handler, MachineParams } from './types.js'

/** A route that upgrades to a WebSocket; `handler` answers a GET that does not ask to. */
export interface WsRoute {
  handler: Handler
  /** Runs before the upgrade: what it throws is the HTTP reply to the upgrade request. */
  preHandler: (req: FastifyRequest) => Promise<void>
  wsHandler: (socket: WebSocket, req: FastifyRequest) => void
}

export interface StreamContext {
  service: MachineService
  maxBatch: number
  settings: StreamSettings
  registry: StreamRegistry
  /** The REST rate limit: an op sent over a socket counts as a request. */
  rateLimit: (principal: string) => void
  /** openapi.yaml's body schema of applyOps, so that socket ops are checked exactly as REST ones. */
  opsSchema: object
}

export function streamRoutes(ctx: StreamContext): Record<string, WsRoute> {
  const { service, maxBatch } = ctx
  const validOps = compileStrict(ctx.opsSchema)

  const runOps = async (principal: string, id: string, msg: OpRequest): Promise<object> => {
    ctx.rateLimit(principal)
    const body = msg.ops ? { ops: msg.ops } : msg.op
    if (!validOps(body)) {
      const { field, message } = describeValidation(validOps.errors ?? [], 'body')
      throw new HttpError(400, 'invalid_body', message, field)
    }
    if (!msg.ops) return singleBody(await service.apply(principal, id, [msg.op])) as object
    if (msg.ops.length > maxBatch) {
      throw new HttpError(413, 'batch_too_large', `a batch holds at most ${maxBatch} ops; this one has ${msg.ops.length}`, 'ops')
    }
    return batchBody(await service.apply(principal, id, msg.ops)) as object
  }

  return {
    streamMachine: {
      handler: async () => {
        throw new HttpError(426, 'upgrade_required', 'this route is a WebSocket: send Connection: Upgrade, Upgrade: websocket', undefined, { upgrade: 'websocket' })
      },
      preHandler: async (req) => {
        service.get(req.principal, (req.params as MachineParams).id)
      },
      wsHandler: (socket, req) => {
        const session = new StreamSession(socket, req.principal, (req.params as MachineParams).id, {
          service,
          settings: ctx.settings,
          runOps,
          log: req.log,
        })
        session.start()
        ctx.registry.add(session)
      },
    },
  }
}
