// Idempotency-Key: the first request with a key runs; a retry with the same key and the same
// request gets the stored reply; the same key on a different request is refused. The reply is
// stored by the commit that applies the ops, so after a crash a retry sees both or neither.
import { createHash } from 'node:crypto'
import type { Repo } from '../store/repo.js'
import { ServiceError } from './errors.js'

export interface IdempotencyRequest {
  key: string
  /** Hash of what the request asks for (route and body), to tell a retry from a misuse. */
  hash: string
}

export function requestHash(...parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex')
}

interface InFlight<T> {
  hash: string
  machineId: string
  reply: Promise<T>
}

export class IdempotencyGuard<T extends object> {
  private readonly inFlight = new Map<string, InFlight<T>>()

  constructor(private readonly repo: Repo) {}

  async run(owner: string, machineId: string, req: IdempotencyRequest, work: () => Promise<T>): Promise<T & { replayed?: boolean }> {
    const slot = `${owner}\0${req.key}`
    const running = this.inFlight.get(slot)
    if (running) {
      this.check(req, running.hash, running.machineId, machineId)
      return { ...(await running.reply), replayed: true }
    }
    const stored = this.repo.getIdempotency(owner, req.key)
    if (stored) {
      this.check(req, stored.requestHash, stored.machineId, machineId)
      return { ...(JSON.parse(stored.reply) as T), replayed: true }
    }
    const reply = work()
    this.inFlight.set(slot, { hash: req.hash, machineId, reply })
    try {
      return (await reply) as T
    } finally {
      this.inFlight.delete(slot)
    }
  }

  private check(req: IdempotencyRequest, hash: string, storedMachine: string, machineId: string): void {
    if (hash !== req.hash || storedMachine !== machineId) {
      throw new ServiceError('conflict', 'idempotency_key_reused', `Idempotency-Key ${JSON.stringify(req.key)} was already used for a different request`, 'Idempotency-Key')
    }
  }
}
