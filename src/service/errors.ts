// What the service refuses, described without HTTP: the api layer maps `kind` to a status.

export type ErrorKind =
  | 'invalid' // the request is malformed (400)
  | 'not_found' // no such machine/task for this principal (404)
  | 'refused' // the machine's state cannot take the op (409)
  | 'conflict' // the request contradicts stored state: idempotency key reuse, diverged machine (409/422)
  | 'limit' // a configured limit (machines per principal, ops per batch)
  | 'unavailable' // the store failed; nothing was written (503)

export class ServiceError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message)
    this.name = 'ServiceError'
  }
}

export function notFound(what: string): ServiceError {
  return new ServiceError('not_found', 'not_found', `${what} not found`)
}
