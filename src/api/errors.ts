// One error shape for every reply: {"error": {"code", "message", "field"?}}. Anything the
// handler cannot name becomes a logged 500 with a generic message, never a stack trace.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ErrorObject } from 'ajv'
import { ServiceError, type ErrorKind } from '../service/errors.js'
import { describeValidation } from './validation.js'

export interface ErrorBody {
  error: { code: string; message: string; field?: string }
}

/** An error a route or hook raises with its HTTP status already decided. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

const STATUS_OF_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  refused: 409,
  conflict: 409,
  limit: 409,
  unavailable: 503,
}

/** Fastify's own 4xx errors, named in this API's vocabulary. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_BAD_URL: 'bad_url',
  FST_ERR_MAX_PARAM_LENGTH: 'uri_too_long',
  FST_ERR_ASYNC_CONSTRAINT: 'bad_request',
}

function statusOf(err: ServiceError): number {
  // Reusing an idempotency key for another request is the one conflict that is not the
  // machine's state but the request's own fault.
  return err.code === 'idempotency_key_reused' ? 422 : STATUS_OF_KIND[err.kind]
}

export function toReply(err: FastifyError | Error): { status: number; body: ErrorBody; headers?: Record<string, string> } {
  if (err instanceof HttpError) {
    return { status: err.statusCode, body: body(err.code, err.message, err.field), headers: err.headers }
  }
  if (err instanceof ServiceError) return { status: statusOf(err), body: body(err.code, err.message, err.field) }
  const fe = err as FastifyError & { validation?: ErrorObject[]; validationContext?: string }
  if (fe.validation) {
    const { field, message } = describeValidation(fe.validation, fe.validationContext ?? 'body')
    return { status: 400, body: body(fe.validationContext === 'body' ? 'invalid_body' : 'invalid_parameter', message, field) }
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's messages for client errors are safe to show (they name no internals).
    return { status: fe.statusCode, body: body(FASTIFY_CODES[fe.code] ?? 'bad_request', fe.message) }
  }
  return { status: 500, body: body('internal_error', 'the server failed to handle this request; it has been logged') }
}

function body(code: string, message: string, field?: string): ErrorBody {
  return { error: field === undefined ? { code, message } : { code, message, field } }
}

/** For the errors fastify raises before routing (bad URL encoding, over-long path parameters). */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const { status, body: payload } = toReply(err)
  void reply.code(status).send(payload)
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const { status, body: payload, headers } = toReply(err)
    if (status >= 500 && status !== 503) req.log.error({ err }, 'unhandled error')
    else req.log.info({ code: payload.error.code, status }, 'request refused')
    void reply.code(status).headers(headers ?? {}).send(payload)
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(body('not_found', `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`))
  })
}
