// Ops in, results out. A single op answers with its own status (its refusal is the
// request's error); a batch always answers 200 and says where it stopped.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { requestHash, type IdempotencyRequest } from '../../service/idempotency.js'
import type { OpsOutcome, Rendered } from '../../service/machines.js'
import type { Applied, Refusal } from '../../service/model.js'
import { HttpError } from '../errors.js'
import type { Handlers, MachineParams, RouteContext } from './types.js'

function idempotency(req: FastifyRequest, operation: string): IdempotencyRequest | undefined {
  const key = req.headers['idempotency-key']
  if (typeof key !== 'string') return undefined
  return { key, hash: requestHash(operation, (req.params as MachineParams).id, req.body) }
}

function refusalError(r: Refusal, field: string | undefined): HttpError {
  return new HttpError(r.kind === 'invalid' ? 400 : 409, r.code, r.message, field)
}

function markReplay(reply: FastifyReply, outcome: { replayed?: boolean }): void {
  if (outcome.replayed) reply.header('idempotent-replayed', 'true')
}

/** One op's reply: `{seq, result, events}`, or its refusal thrown as the request's error. */
export function singleBody(outcome: OpsOutcome): unknown {
  const first = outcome.results[0]
  if (!first) throw refusalError(outcome.refused!, outcome.refused!.field)
  return { seq: outcome.seq, result: first.result, events: first.events }
}

/** A batch's reply: what ran, and the refusal with its field named by the op's index. */
export function batchBody(outcome: OpsOutcome): unknown {
  const { seq, results, skipped, refused } = outcome
  const field = refused?.field === undefined ? undefined : `ops[${refused.index}].${refused.field}`
  return { seq, results, skipped, refused: refused && { ...refused, ...(field ? { field } : {}) } }
}

/**
 * JSON.stringify(batchBody(outcome)), with each event's text taken from the copy made for the
 * store instead of serialising it again: a batch of 1,000 ops carries some 3,500 events.
 */
export function batchJson(outcome: OpsOutcome, eventTexts: readonly string[] = textsOf(outcome.results)): string {
  const { seq, results, skipped, refused } = batchBody(outcome) as OpsOutcome
  let k = 0
  const parts = results.map((r) => `{"result":${JSON.stringify(r.result)},"events":[${eventTexts.slice(k, (k += r.events.length)).join(',')}]}`)
  return `{"seq":${seq},"results":[${parts.join(',')}],"skipped":${skipped},"refused":${JSON.stringify(refused)}}`
}

/** JSON.stringify(singleBody(outcome)), the same way. */
export function singleJson(outcome: OpsOutcome, eventTexts: readonly string[] = textsOf(outcome.results)): string {
  const { seq, result } = singleBody(outcome) as { seq: number; result: unknown }
  return `{"seq":${seq},"result":${JSON.stringify(result)},"events":[${eventTexts.join(',')}]}`
}

/** The texts for an outcome that comes without them: a replayed reply, parsed back from the store. */
function textsOf(results: readonly Applied[]): string[] {
  return results.flatMap((r) => r.events.map((e) => JSON.stringify(e)))
}

function sendJson(reply: FastifyReply, text: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(text)
}

function single(outcome: Rendered, reply: FastifyReply): FastifyReply {
  markReplay(reply, outcome)
  return sendJson(reply, outcome.rendered ?? singleJson(outcome))
}

export function opHandlers({ service, maxBatch }: RouteContext): Handlers {
  return {
    applyOps: async (req, reply) => {
      const { id } = req.params as MachineParams
      const body = req.body as { ops?: unknown[] }
      if (!body.ops) return single(await service.apply(req.principal, id, [body], idempotency(req, 'applyOps'), singleJson), reply)
      if (body.ops.length > maxBatch) {
        throw new HttpError(413, 'batch_too_large', `a batch holds at most ${maxBatch} ops; this one has ${body.ops.length}`, 'ops')
      }
      const outcome = await service.apply(req.principal, id, body.ops, idempotency(req, 'applyOps'), batchJson)
      markReplay(reply, outcome)
      return sendJson(reply, outcome.rendered ?? batchJson(outcome))
    },
    spawnTask: async (req, reply) => {
      const { id } = req.params as MachineParams
      const op = { op: 'spawn', ...(req.body as object) }
      const outcome = await service.apply(req.principal, id, [op], idempotency(req, 'spawnTask'), singleJson)
      return single(outcome, reply.code(201))
    },
  }
}
