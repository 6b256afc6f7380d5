// The fastify application: error handling, request ids and logging, auth and rate limits,
// then exactly the routes of openapi.yaml (the WebSocket stream and the dashboard among
// them), then the interactive docs.
import { randomUUID } from 'node:crypto'
import fastify, { type FastifyBaseLogger, type FastifyInstance, type onRequestHookHandler } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import type { Logger } from 'pino'
import type { MachineService } from '../service/machines.js'
import { authenticator, type Principal } from './auth.js'
import { frameworkErrors, registerErrorHandling } from './errors.js'
import type { Metrics } from './metrics.js'
import { rateLimiter, type RateLimit } from './rate-limit.js'
import { dashboardHandlers } from './routes/dashboard.js'
import { exportHandlers } from './routes/export.js'
import { machineHandlers } from './routes/machines.js'
import { operationHandlers } from './routes/operations.js'
import { opHandlers } from './routes/ops.js'
import { streamRoutes } from './routes/stream.js'
import { traceHandlers } from './routes/traces.js'
import type { Handlers } from './routes/types.js'
import type { StreamSettings } from './settings.js'
import { loadSpec, type Spec } from './spec.js'
import { StreamRegistry } from './stream/registry.js'
import { validatorCompiler } from './validation.js'

declare module 'fastify' {
  interface FastifyRequest {
    principal: string
  }
  interface FastifyInstance {
    /** Every route registered, as `METHOD url`: the spec-agreement test compares it with openapi.yaml. */
    routeList: string[]
  }
}

export interface AppOptions {
  service: MachineService
  metrics: Metrics
  principals: readonly Principal[]
  logger: Logger
  ready: () => boolean
  maxBatch: number
  bodyLimit: number
  rate: RateLimit
  stream: StreamSettings
  spec?: Spec
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,64}$/

/** The request line as logged: a token given in the query string never reaches the logs. */
function redactedUrl(url: string): string {
  // Every request is logged and few carry a token: a substring test spares them the regex.
  return url.includes('token=') ? url.replace(/([?&]token=)[^&#]*/g, '$1[Redacted]') : url
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const spec = opts.spec ?? loadSpec()
  const logger = opts.logger.child({}, {
    serializers: {
      req: (req: { method: string; url: string; host?: string; ip?: string; socket?: { remotePort?: number } }) => ({
        method: req.method,
        url: redactedUrl(req.url),
        host: req.host,
        remoteAddress: req.ip,
        remotePort: req.socket?.remotePort,
      }),
    },
    // That serializer lets no header through, so a redaction of `req.headers.authorization`
    // inherited from the server's logger could never match here, yet it would clone and walk
    // every request's `req` on its way to the log. A header dump stays redacted.
    redact: ['headers.authorization'],
  })
  const app = fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: opts.bodyLimit,
    // The spec lists no HEAD routes, and the app must match the spec exactly.
    exposeHeadRoutes: false,
    // A client may name its request; anything else gets a fresh id.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    routerOptions: { maxParamLength: 200 },
    frameworkErrors,
  })
  app.setValidatorCompiler(validatorCompiler)
  app.decorate('routeList', [] as string[])
  app.addHook('onRoute', (route) => {
    for (const m of [route.method].flat()) app.routeList.push(`${m} ${route.url}`)
  })
  registerErrorHandling(app)
  app.decorateRequest('principal', '')

  // Registered before the routes, whose auth hooks run after its own onRequest hook: that one
  // marks upgrade requests, so that a refused upgrade (401) still gets its socket closed.
  // Streams close with 1001 at shutdown, after answering the ops they are running.
  const streams = new StreamRegistry(opts.stream.heartbeatMs)
  await app.register(websocket, { options: { maxPayload: opts.bodyLimit }, preClose: () => streams.closeAll() })

  // The hooks take callbacks rather than being async: an async hook costs every request a
  // promise and a turn of the microtask queue, and these run on every request.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    done()
  })
  // While shutting down, replies to in-flight requests close their keep-alive connection,
  // so the server can finish closing instead of waiting out the clients' idle sockets.
  app.addHook('onSend', (_req, reply, _payload, done) => {
    if (!opts.ready()) reply.header('connection', 'close')
    done()
  })
  app.addHook('onResponse', (req, reply, done) => {
    opts.metrics.countRequest(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode)
    done()
  })
  const authenticate = authenticator(opts.principals)
  const limit = rateLimiter(opts.rate)
  /**
   * The onRequest hook of a route that needs a token: names the principal, or refuses with 401
   * or 429. With `queryToken` the token may also come as `?token=` (browsers cannot set
   * WebSocket headers).
   */
  const guard = (queryToken: boolean): onRequestHookHandler => (req, _reply, done) => {
    try {
      req.principal = authenticate(req, queryToken)
      limit(req.principal)
    } catch (err) {
      return done(err as Error)
    }
    done()
  }

  const ctx = { service: opts.service, maxBatch: opts.maxBatch }
  const handlers: Handlers = {
    ...operationHandlers({ metrics: opts.metrics, specText: spec.text, ready: opts.ready }),
    ...machineHandlers(ctx),
    ...opHandlers(ctx),
    ...traceHandlers(ctx),
    ...exportHandlers(ctx),
    ...dashboardHandlers(),
  }
  const opsSchema = spec.operations.find((o) => o.operationId === 'applyOps')?.schema.body as object
  const wsRoutes = streamRoutes({ ...ctx, settings: opts.stream, registry: streams, rateLimit: limit, opsSchema })
  const unused = new Set([...Object.keys(handlers), ...Object.keys(wsRoutes)])
  for (const op of spec.operations) {
    const ws = wsRoutes[op.operationId]
    const handler = ws?.handler ?? handlers[op.operationId]
    if (!handler) throw new Error(`openapi.yaml names operation ${op.operationId}, which has no handler`)
    unused.delete(op.operationId)
    app.route({
      method: op.method,
      url: op.url,
      schema: op.schema,
      handler,
      ...(ws ? { wsHandler: ws.wsHandler, preHandler: ws.preHandler } : {}),
      ...(op.public ? {} : { onRequest: guard(ws !== undefined) }),
    })
  }
  if (unused.size > 0) throw new Error(`handlers missing from openapi.yaml: ${[...unused].join(', ')}`)

  await app.register(swagger, { mode: 'static', specification: { document: spec.document as never } })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  return app
}
