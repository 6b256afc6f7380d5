// One WebSocket watching one machine: greeting, subscriptions (stored backlog, then live
// events, with no gap and no duplicate), ops sent over the socket, and the endings (lagged,
// halted, deleted, shutdown). The protocol is described in docs/stream.md.
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import { ServiceError } from '../../service/errors.js'
import { matches, type Listener, type Unsubscribe } from '../../service/hub.js'
import type { MachineService } from '../../service/machines.js'
import type { SimEvent } from '../../service/model.js'
import type { StreamSettings } from '../settings.js'
import { toReply } from '../errors.js'
import { eventsMessage, liveEventsMessage } from './encode.js'
import { CLOSE, parseClientMessage, PROTOCOL_VERSION, ProtocolError, type OpRequest, type Subscribe } from './protocol.js'

export interface SessionContext {
  service: MachineService
  settings: StreamSettings
  /** Runs one `{id, op}` or `{id, ops}` and returns the reply body (REST's), or throws. */
  runOps: (principal: string, machineId: string, msg: OpRequest) => Promise<object>
  log: FastifyBaseLogger
}

/** Stored events are sent in pages of this many, each once the socket has taken the previous one. */
const BACKLOG_PAGE = 1000
/** Ops of one socket running at once; beyond this the socket is not read until one finishes. */
const MAX_INFLIGHT_OPS = 16
/** How often a socket whose replies are backed up is checked for having drained. */
const DRAIN_POLL_MS = 20

type BacklogEnd = 'live' | 'halted' | 'stale'

export class StreamSession {
  /** Highest seq this connection has sent, or passed over by its filter: a resume starts after it. */
  private position = 0
  /** Bumped by every subscribe: callbacks of an earlier subscription see it and drop their work. */
  private generation = 0
  private filter: { types?: string[]; cpus?: number[]; pids?: number[] } = {}
  private unsubscribe: Unsubscribe | undefined
  /** Lets a live batch held back during the backlog go (or be dropped, if the subscription is stale). */
  private releaseHeld: (() => void) | undefined
  private readonly inflight = new Set<Promise<void>>()
  private ended = false
  private closing = false
  private paused = false
  private drainTimer: NodeJS.Timeout | undefined
  /** Cleared at each ping, set by the pong: a peer that stays silent for a whole interval is dead. */
  private alive = true

  constructor(
    private readonly socket: WebSocket,
    private readonly principal: string,
    private readonly machineId: string,
    private readonly ctx: SessionContext,
  ) {}

  /** Must run synchronously in the upgrade callback, so that no early message goes unheard. */
  start(): void {
    this.socket.on('message', (data, isBinary) => this.onMessage(data, isBinary))
    this.socket.on('pong', () => (this.alive = true))
    this.socket.on('close', () => {
      clearTimeout(this.drainTimer)
      this.dispose()
    })
    let machine
    try {
      machine = this.ctx.service.get(this.principal, this.machineId)
    } catch (err) {
      return this.fail(err)
    }
    this.position = machine.seq
    this.send({ type: 'hello', version: PROTOCOL_VERSION, machine, seq: machine.seq })
  }

  /** One heartbeat tick: drop a peer that did not answer the last ping, ping the others. */
  heartbeat(): void {
    if (!this.alive) {
      this.ctx.log.info({ machine: this.machineId }, 'stream peer missed its heartbeat; dropped')
      this.socket.terminate()
      return
    }
    this.alive = false
    this.socket.ping()
  }

  /** Server shutdown: answer the ops already running, then close with 1001. */
  async shutdown(): Promise<void> {
    this.closing = true
    await Promise.allSettled([...this.inflight])
    this.end(undefined, CLOSE.goingAway, 'server shutting down')
  }

  get closed(): Promise<void> {
    if (this.socket.readyState === this.socket.CLOSED) return Promise.resolve()
    return new Promise((resolve) => this.socket.once('close', () => resolve()))
  }

  terminate(): void {
    this.socket.terminate()
  }

  private onMessage(data: Parameters<typeof parseClientMessage>[0], isBinary: boolean): void {
    if (this.ended) return
    let msg
    try {
      msg = parseClientMessage(data, isBinary)
    } catch (err) {
      return this.replyError(undefined, err)
    }
    if ('type' in msg) this.subscribe(msg)
    else this.runOps(msg)
  }

  // ---- subscriptions ------------------------------------------------------------------

  /**
   * The handoff from stored to live events. The hub listener is registered first, and what
   * it receives is held back; the backlog is then read from SQLite up to the committed head.
   * Reads and commits are both synchronous, so every event after that head is committed, and
   * therefore published, after the listener exists: nothing falls between the two. The held
   * events are then let go with everything at or below the position dropped: no duplicate.
   */
  private subscribe(msg: Subscribe): void {
    const after = msg.after ?? this.position
    let head
    try {
      head = this.ctx.service.get(this.principal, this.machineId)
    } catch (err) {
      return this.fail(err)
    }
    if (after > head.seq) return this.replyError(undefined, new ProtocolError('seq_out_of_range', `after=${after} is beyond the machine's seq ${head.seq}`, 'after'))
    this.dispose()
    const gen = this.generation
    this.filter = { ...(msg.types ? { types: msg.types } : {}), ...(msg.cpus ? { cpus: msg.cpus } : {}), ...(msg.pids ? { pids: msg.pids } : {}) }
    let live = false
    const caughtUp = new Promise<void>((resolve) => (this.releaseHeld = resolve))
    const listener: Listener = (m) => {
      if (gen !== this.generation) return
      if (m.kind === 'events') {
        if (live) return this.deliverLive(m.events)
        // The hub waits for this promise before handing over more, and queues meanwhile,
        // up to its own bound (beyond which it sends `lagged`).
        return caughtUp.then(() => (gen === this.generation ? this.deliverLive(m.events) : undefined))
      }
      if (m.kind === 'lagged') return this.lag()
      return this.end({ type: 'deleted' }, CLOSE.deleted, 'machine deleted')
    }
    try {
      this.unsubscribe = this.ctx.service.subscribe(this.principal, this.machineId, listener)
    } catch (err) {
      return this.fail(err)
    }
    this.send({ type: 'subscribed', after, ...this.filter })
    this.sendBacklog(gen, after).then(
      (how) => {
        if (how === 'stale' || this.ended) return
        this.send({ type: 'live', seq: this.position })
        if (how === 'halted') {
          return void this.endHalted().catch((err: unknown) => {
            this.dispose()
            this.fail(err)
          })
        }
        live = true
        this.releaseHeld?.()
      },
      (err: unknown) => {
        if (gen !== this.generation) return
        this.dispose()
        this.fail(err)
      },
    )
  }

  private async sendBacklog(gen: number, after: number): Promise<BacklogEnd> {
    const { service } = this.ctx
    let pos = after
    for (;;) {
      if (gen !== this.generation || this.ended) return 'stale'
      // The page covers every stored event up to storedSeq, and the events of every op
      // acknowledged before this read are stored: later ones reach this session live.
      const { rows, storedSeq, machine } = await service.trace(this.principal, this.machineId, { after: pos, limit: BACKLOG_PAGE, ...this.filter })
      if (gen !== this.generation || this.ended) return 'stale'
      if (rows.length < BACKLOG_PAGE) {
        if (rows.length > 0) this.send(eventsMessage(rows))
        this.position = Math.max(pos, storedSeq)
        // Halted with the halt stored: nothing will come live. A halt not stored yet will.
        return machine.status === 'halted' && storedSeq === machine.seq ? 'halted' : 'live'
      }
      pos = (JSON.parse(rows[rows.length - 1]!) as SimEvent).seq
      this.position = pos
      // Backpressure: the next page is read once the socket has written this one out.
      await new Promise<void>((resolve) => this.socket.send(eventsMessage(rows), () => resolve()))
    }
  }

  private deliverLive(events: readonly SimEvent[]): void {
    if (this.ended) return
    let from = 0
    while (from < events.length && events[from]!.seq <= this.position) from++
    if (from === events.length) return
    // A socket holding more than its bound unsent is too far behind; memory must not grow with it.
    if (this.socket.bufferedAmount > this.ctx.settings.maxBufferedBytes) return this.lag()
    const fresh = from === 0 ? events : events.slice(from)
    const picked = this.filter.types || this.filter.cpus || this.filter.pids ? fresh.filter((e) => matches(this.filter, e)) : fresh
    if (picked.length > 0) this.socket.send(liveEventsMessage(picked), { binary: false })
    this.position = fresh[fresh.length - 1]!.seq
    // A halt is the machine's last event ever, so only the last of a batch can be one.
    const halt = fresh[fresh.length - 1] as SimEvent & { reason?: string }
    if (halt.type === 'halt') this.end({ type: 'halted', seq: halt.seq, reason: halt.reason ?? null }, CLOSE.normal, 'machine halted')
  }

  /** A machine found halted at the end of its backlog: say so with the halt event's own words. */
  private async endHalted(): Promise<void> {
    const [row] = await this.ctx.service.events(this.principal, this.machineId, { after: 0, limit: 1, types: ['halt'] })
    const halt = row === undefined ? undefined : (JSON.parse(row) as SimEvent & { reason?: string })
    this.end({ type: 'halted', seq: halt?.seq ?? this.position, reason: halt?.reason ?? null }, CLOSE.normal, 'machine halted')
  }

  private lag(): void {
    this.end({ type: 'lagged', resumeAfter: this.position }, CLOSE.lagged, 'too far behind: resume after resumeAfter')
  }

  // ---- ops ----------------------------------------------------------------------------

  private runOps(msg: OpRequest): void {
    if (this.closing) return this.replyError(msg.id, new ProtocolError('shutting_down', 'the server is shutting down; send this op again after reconnecting'))
    const running = this.ctx
      .runOps(this.principal, this.machineId, msg)
      .then(
        (body) => this.send({ type: 'result', id: msg.id, ...body }), // then updateReading, in finally
        (err: unknown) => this.replyError(msg.id, err),
      )
      .finally(() => {
        this.inflight.delete(running)
        this.updateReading()
      })
    this.inflight.add(running)
    this.updateReading()
  }

  /**
   * Reads the peer only while few of its ops are running and its replies drain. Every frame
   * earns a reply, so a peer that sends and never reads would otherwise make the server
   * queue replies without end; paused, it fills its own TCP window instead of our memory.
   */
  private updateReading(): void {
    const backedUp = this.socket.bufferedAmount > this.ctx.settings.maxBufferedBytes
    const pause = backedUp || this.inflight.size >= MAX_INFLIGHT_OPS
    if (pause !== this.paused) {
      this.paused = pause
      if (pause) this.socket.pause()
      else this.socket.resume()
    }
    if (backedUp && this.drainTimer === undefined && !this.ended) {
      this.drainTimer = setTimeout(() => {
        this.drainTimer = undefined
        this.updateReading()
      }, DRAIN_POLL_MS)
    }
  }

  private replyError(id: string | number | undefined, err: unknown): void {
    let error
    if (err instanceof ProtocolError) {
      error = { code: err.code, message: err.message, ...(err.field === undefined ? {} : { field: err.field }) }
    } else {
      const { status, body } = toReply(err as Error)
      if (status >= 500 && status !== 503) this.ctx.log.error({ err, machine: this.machineId }, 'stream op failed')
      error = body.error
    }
    this.send({ type: 'error', ...(id === undefined ? {} : { id }), error })
    this.updateReading()
  }

  // ---- endings ------------------------------------------------------------------------

  private fail(err: unknown): void {
    if (err instanceof ServiceError && err.kind === 'not_found') return this.end({ type: 'deleted' }, CLOSE.deleted, 'machine deleted')
    if (err instanceof ProtocolError) return this.replyError(undefined, err)
    this.ctx.log.error({ err, machine: this.machineId }, 'stream failed')
    this.end(undefined, CLOSE.internal, 'internal error')
  }

  /** The last word: one final message, then the close handshake. */
  private end(last: object | undefined, code: number, reason: string): void {
    if (this.ended) return
    this.ended = true
    this.dispose()
    if (last) this.send(last)
    this.socket.close(code, reason)
  }

  /** Ends the current subscription, if any; its callbacks still in flight become stale. */
  private dispose(): void {
    this.generation++
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.releaseHeld?.()
  }

  private send(msg: object | string): void {
    if (this.socket.readyState !== this.socket.OPEN) return
    this.socket.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
  }
}
