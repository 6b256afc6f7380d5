// The wire protocol of `GET /v1/machines/{id}/stream` (docs/stream.md): the messages a
// client may send, checked here before anything acts on them, and the close codes.
import type { RawData } from 'ws'
import { compileStrict, describeValidation } from '../validation.js'

/** Sent in `hello`; bumped only by a change that an existing client would misread. */
export const PROTOCOL_VERSION = 1

export const CLOSE = {
  /** After `halted`: the machine will never produce another event. */
  normal: 1000,
  /** The server is shutting down; reconnect elsewhere or later with the last seq seen. */
  goingAway: 1001,
  /** An unexpected server failure. */
  internal: 1011,
  /** After `deleted`: the machine no longer exists. */
  deleted: 4004,
  /** After `lagged`: the client fell too far behind; resume after `resumeAfter`. */
  lagged: 4008,
} as const

export interface Subscribe {
  type: 'subscribe'
  /** Start after this seq; omitted, the stream carries on from where this connection is. */
  after?: number
  types?: string[]
  cpus?: number[]
  pids?: number[]
}

export interface OpRequest {
  id: string | number
  op?: Record<string, unknown>
  ops?: unknown[]
}

export type ClientMessage = Subscribe | OpRequest

/** A message the server will not act on; answered with `{type: "error"}`, the socket stays open. */
export class ProtocolError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message)
    this.name = 'ProtocolError'
  }
}

// The same limits as the filters of GET /v1/machines/{id}/events.
const seq = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }
const subscribeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { const: 'subscribe' },
    after: seq,
    types: { type: 'array', maxItems: 32, items: { type: 'string', pattern: '^[a-z_]{1,32}$' } },
    cpus: { type: 'array', maxItems: 64, items: { type: 'integer', minimum: 0, maximum: 63 } },
    pids: { type: 'array', maxItems: 64, items: { type: 'integer', minimum: 0, maximum: 2147483647 } },
  },
}
const opRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  oneOf: [{ required: ['op'] }, { required: ['ops'] }],
  properties: {
    id: { type: ['string', 'integer'], minLength: 1, maxLength: 200 },
    // The op itself is checked against openapi.yaml's Op schema by whoever runs it.
    op: { type: 'object' },
    ops: { type: 'array' },
  },
}
const validSubscribe = compileStrict(subscribeSchema)
const validOpRequest = compileStrict(opRequestSchema)

function check<T>(validate: ReturnType<typeof compileStrict>, msg: unknown): T {
  if (validate(msg)) return msg as T
  const { field, message } = describeValidation(validate.errors ?? [], 'message')
  throw new ProtocolError('invalid_message', message, field)
}

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  return (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8')
}

export function parseClientMessage(data: RawData, isBinary: boolean): ClientMessage {
  if (isBinary) throw new ProtocolError('invalid_message', 'messages are JSON text frames')
  let msg: unknown
  try {
    msg = JSON.parse(text(data))
  } catch {
    throw new ProtocolError('invalid_json', 'a message must be one JSON object')
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ProtocolError('invalid_message', 'a message must be one JSON object')
  const type = (msg as { type?: unknown }).type
  if (type === 'subscribe') return check<Subscribe>(validSubscribe, msg)
  if (type !== undefined) throw new ProtocolError('invalid_message', `unknown message type ${JSON.stringify(type)}: one of subscribe, or {id, op} / {id, ops}`, 'type')
  return check<OpRequest>(validOpRequest, msg)
}
