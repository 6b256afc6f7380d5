// Probes, metrics and the spec itself: no token needed, no rate limit.
import type { Metrics } from '../metrics.js'
import { HttpError } from '../errors.js'
import type { Handlers } from './types.js'

export interface OperationsContext {
  metrics: Metrics
  specText: string
  ready: () => boolean
}

export function operationHandlers({ metrics, specText, ready }: OperationsContext): Handlers {
  return {
    healthz: async () => ({ status: 'ok' }),
    readyz: async () => {
      if (!ready()) throw new HttpError(503, 'not_ready', 'the server is starting or shutting down')
      return { status: 'ready' }
    },
    metrics: async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()),
    openapiDocument: async (_req, reply) => reply.type('application/yaml; charset=utf-8').send(specText),
  }
}
