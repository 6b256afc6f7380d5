// Reads the environment, opens the store, builds the app, listens, and shuts down cleanly on
// SIGTERM/SIGINT: stop accepting, let in-flight requests finish, commit, close the database.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import pino, { type Logger } from 'pino'
import { buildApp } from './api/app.js'
import { Metrics } from './api/metrics.js'
import { readSettings, SettingsError, type Settings } from './api/settings.js'
import { Hub } from './service/hub.js'
import { MachineService } from './service/machines.js'
import { openDb, type Db } from './store/db.js'
import { Repo } from './store/repo.js'
import { ThreadWriter } from './store/thread-writer.js'
import { GroupWriter, type Writer, type WriterEvents } from './store/writer.js'

export interface Lab {
  app: FastifyInstance
  db: Db
  service: MachineService
  hub: Hub
  /** Stops the app (draining requests), flushes the last commits and closes the database. */
  close: () => Promise<void>
}

export function createLogger(level: string): Logger {
  // Tokens travel only in the Authorization header; redact it wherever a header dump appears.
  return pino({ level, redact: ['req.headers.authorization', 'headers.authorization'] })
}

/** Picks the writer a lab commits through: the settings' durability decides by default. */
export type WriterFor = (repo: Repo, report: WriterEvents) => Writer

/**
 * With `full`, each commit waits for an fsync: a writer thread takes that off the event loop.
 * With `normal` a commit is a few page-cache writes, cheaper here than a hand-off.
 */
function writerOfSettings(settings: Settings, logger: Logger): WriterFor {
  if (settings.durability === 'normal' || settings.dbFile === ':memory:') return (repo, report) => new GroupWriter(repo, report)
  return (_repo, report) =>
    new ThreadWriter({
      file: settings.dbFile,
      durability: settings.durability,
      maxBytes: settings.dbMaxBytes,
      ...report,
      onFatal: (err) => {
        // Its connection may still hold the write lock, and the outcome of the transaction
        // it was running is unknown: stop, and let a restart recover the store.
        logger.fatal({ err }, 'storage writer thread failed; exiting')
        logger.flush()
        process.exit(70)
      },
    })
}

/**
 * `writerFor` replaces the writer the settings would pick: the benchmarks measure the server
 * with one that stores nothing, to tell what storage costs from what the rest costs.
 */
export async function createLab(settings: Settings, logger: Logger = createLogger(settings.logLevel), writerFor?: WriterFor): Promise<Lab> {
  const db = openDb(settings.dbFile, { durability: settings.durability, maxBytes: settings.dbMaxBytes })
  const repo = new Repo(db)
  const hub = new Hub()
  let metrics: Metrics | undefined
  const report: WriterEvents = {
    onCommit: (stats) => metrics?.observeCommit(stats),
    onEventsStored: (n) => metrics?.observeEventsStored(n),
  }
  const writer = (writerFor ?? writerOfSettings(settings, logger))(repo, report)
  // The thread opens its connection at start-up, not on the first request.
  if (writer instanceof ThreadWriter) await writer.ready
  const service = new MachineService(repo, writer, hub, settings.limits, logger)
  const recovered = service.recoverEvents()
  if (recovered > 0) logger.warn({ machines: recovered }, 'trace events lost in an unclean stop were derived again from the op log')
  metrics = new Metrics({
    opsApplied: () => service.counters.opsApplied,
    liveMachines: () => service.liveCount,
    subscribers: () => hub.subscribers,
  })
  let ready = true
  const app = await buildApp({
    service,
    metrics,
    principals: settings.principals,
    logger,
    ready: () => ready,
    maxBatch: settings.limits.maxBatch,
    bodyLimit: settings.limits.bodyLimit,
    rate: settings.limits.rate,
    stream: settings.stream,
  })
  const close = async (): Promise<void> => {
    ready = false
    await app.close()
    await writer.close()
    db.close()
  }
  return { app, db, service, hub, close }
}

/** Starts the server from the environment, as `npm start` and `kmaplab serve` do (see createLab for `writerFor`). */
export async function main(writerFor?: WriterFor): Promise<void> {
  let settings: Settings
  try {
    settings = readSettings(process.env)
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err
    console.error(`kmaplab: ${err.message}`)
    process.exit(2)
  }
  const logger = createLogger(settings.logLevel)
  const lab = await createLab(settings, logger, writerFor)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down: draining requests')
    lab.close().then(
      () => {
        logger.info('stopped')
        logger.flush()
        process.exit(0)
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
  await lab.app.listen({ host: settings.host, port: settings.port })
}

// Run only when executed (node dist/server.js), not when a test imports createLab.
const entry = process.argv[1]
if (entry && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error('kmaplab failed to start:', err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
