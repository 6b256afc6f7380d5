// Everything the server reads from its environment, checked once at start-up so a bad value
// stops the server with a sentence instead of surfacing later as a strange failure.
import type { Durability } from '../service/store-types.js'
import { loadPrincipals, type Principal } from './auth.js'

export interface Settings {
  host: string
  port: number
  dbFile: string
  durability: Durability
  /** A size quota for the database (KMAPLAB_DB_MAX_MB); undefined: none. */
  dbMaxBytes: number | undefined
  principals: Principal[]
  logLevel: string
  limits: {
    machinesPerOwner: number
    liveMachines: number
    checkpointEvery: number
    maxBatch: number
    bodyLimit: number
    rate: { max: number; windowMs: number }
  }
  stream: StreamSettings
}

export interface StreamSettings {
  /** Every this many ms each socket is pinged; one that has not answered the previous ping is dropped. */
  heartbeatMs: number
  /** Bytes a socket may hold unsent before its subscriber is cut with `lagged`. */
  maxBufferedBytes: number
}

export class SettingsError extends Error {
  override name = 'SettingsError'
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

function int<D extends number | undefined>(env: NodeJS.ProcessEnv, name: string, dflt: D, min: number, max: number): number | D {
  const raw = env[name]
  if (raw === undefined || raw === '') return dflt
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) throw new SettingsError(`${name}=${raw}: expected an integer from ${min} to ${max}`)
  return n
}

export function readSettings(env: NodeJS.ProcessEnv): Settings {
  let principals: Principal[]
  try {
    principals = loadPrincipals(env)
  } catch (err) {
    throw new SettingsError((err as Error).message)
  }
  const host = env.HOST || '127.0.0.1'
  if (principals.length === 0 && !LOOPBACK.has(host)) {
    throw new SettingsError(
      `refusing to listen on ${host} without access control: with no tokens configured the server is ` +
        'single-user and listens on 127.0.0.1 only. Set KMAPLAB_TOKENS (name=token,...) or ' +
        'KMAPLAB_TOKENS_FILE, or unset HOST.',
    )
  }
  const durability = env.KMAPLAB_DURABILITY || 'full'
  if (durability !== 'full' && durability !== 'normal') {
    throw new SettingsError(`KMAPLAB_DURABILITY=${durability}: expected "full" (fsync each commit) or "normal"`)
  }
  // Up to 1 TiB: far beyond a lab's needs, and well inside SQLite's page-count limit.
  const dbMaxMb = int(env, 'KMAPLAB_DB_MAX_MB', undefined, 1, 1024 * 1024)
  return {
    host,
    port: int(env, 'PORT', 3000, 0, 65535),
    dbFile: env.KMAPLAB_DB || './data/kmaplab.db',
    durability,
    dbMaxBytes: dbMaxMb === undefined ? undefined : dbMaxMb * 1024 * 1024,
    principals,
    logLevel: env.LOG_LEVEL || 'info',
    limits: {
      machinesPerOwner: int(env, 'KMAPLAB_MAX_MACHINES', 100, 1, 1_000_000),
      liveMachines: int(env, 'KMAPLAB_LIVE_MACHINES', 1000, 1, 1_000_000),
      checkpointEvery: int(env, 'KMAPLAB_CHECKPOINT_EVERY', 1000, 1, 1_000_000),
      maxBatch: int(env, 'KMAPLAB_MAX_BATCH', 10_000, 1, 1_000_000),
      bodyLimit: int(env, 'KMAPLAB_BODY_LIMIT', 4 * 1024 * 1024, 1024, 1024 ** 3),
      rate: {
        max: int(env, 'KMAPLAB_RATE_MAX', 100_000, 1, 1e9),
        windowMs: int(env, 'KMAPLAB_RATE_WINDOW_MS', 60_000, 1, 86_400_000),
      },
    },
    stream: {
      heartbeatMs: int(env, 'KMAPLAB_STREAM_HEARTBEAT_MS', 30_000, 10, 3_600_000),
      maxBufferedBytes: int(env, 'KMAPLAB_STREAM_MAX_BUFFERED', 1024 * 1024, 1024, 1024 ** 3),
    },
  }
}
