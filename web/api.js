// The lab's REST API and its WebSocket stream, with the bearer token the user gave (kept for
// this tab only). The stream reconnects by itself and resumes after the last seq it saw.
const TOKEN_KEY = 'kmaplab.token'

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.error?.code
  }
}

export async function api(method, path, body) {
  const headers = {}
  if (token.get()) headers.authorization = `Bearer ${token.get()}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  const json = text ? JSON.parse(text) : undefined
  if (!res.ok) throw new ApiError(res.status, json)
  return json
}

/**
 * A subscription to one machine's events. `handlers.onEvents(events)`, `onStatus(text)`,
 * `onEnd(msg)` (halted or deleted); `run(opOrOps)` sends ops over the socket and resolves
 * with the reply.
 */
export class Stream {
  constructor(machineId, after, handlers) {
    this.machineId = machineId
    this.last = after
    this.handlers = handlers
    this.pending = new Map()
    this.nextId = 1
    this.stopped = false
    this.connect()
  }

  connect() {
    const q = token.get() ? `?token=${encodeURIComponent(token.get())}` : ''
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/machines/${this.machineId}/stream${q}`)
    this.ws = ws
    this.handlers.onStatus('connecting')
    ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', after: this.last }))
    ws.onmessage = (m) => this.receive(JSON.parse(m.data))
    ws.onclose = (e) => {
      for (const [, p] of this.pending) p.reject(new Error('the stream closed before the reply'))
      this.pending.clear()
      if (this.stopped || e.code === 4004 || e.code === 1000) return
      // Lagged, shut down or cut: come back and carry on from the last seq seen.
      this.handlers.onStatus('reconnecting')
      setTimeout(() => this.stopped || this.connect(), 1000)
    }
  }

  receive(msg) {
    switch (msg.type) {
      case 'live':
        return this.handlers.onStatus('live')
      case 'events':
        this.last = msg.events.at(-1).seq
        return this.handlers.onEvents(msg.events)
      case 'result':
      case 'error': {
        const p = this.pending.get(msg.id)
        if (!p) return this.handlers.onStatus(`error: ${msg.error?.message}`)
        this.pending.delete(msg.id)
        return p.resolve(msg)
      }
      case 'lagged':
        this.last = msg.resumeAfter
        return
      case 'halted':
      case 'deleted':
        this.stopped = true
        return this.handlers.onEnd(msg)
    }
  }

  run(body) {
    const id = this.nextId++
    this.ws.send(JSON.stringify(Array.isArray(body) ? { id, ops: body } : body.ops ? { id, ops: body.ops } : { id, op: body }))
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }))
  }

  close() {
    this.stopped = true
    this.ws.close()
  }
}
