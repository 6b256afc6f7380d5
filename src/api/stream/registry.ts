// Every open stream of the server, for the two things done to all of them at once: the
// heartbeat, and closing them at shutdown.
import type { StreamSession } from './session.js'

/** How long shutdown waits for peers to answer the close handshake before cutting them off. */
const CLOSE_GRACE_MS = 2000

export class StreamRegistry {
  private readonly sessions = new Set<StreamSession>()
  private readonly timer: NodeJS.Timeout

  constructor(heartbeatMs: number) {
    this.timer = setInterval(() => {
      for (const s of this.sessions) s.heartbeat()
    }, heartbeatMs)
    // The heartbeat alone must not keep a process alive.
    this.timer.unref()
  }

  get size(): number {
    return this.sessions.size
  }

  add(session: StreamSession): void {
    this.sessions.add(session)
    void session.closed.then(() => this.sessions.delete(session))
  }

  /** Answers in-flight ops, closes every socket with 1001 and waits (briefly) for the handshakes. */
  async closeAll(): Promise<void> {
    clearInterval(this.timer)
    const all = [...this.sessions]
    await Promise.all(all.map((s) => s.shutdown()))
    let grace: NodeJS.Timeout | undefined
    const timedOut = new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))
    await Promise.race([Promise.all(all.map((s) => s.closed)), timedOut])
    clearTimeout(grace)
    for (const s of all) s.terminate()
  }
}
