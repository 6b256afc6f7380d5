// A fixed-window request limit per principal: cheap enough to sit in front of every call,
// and precise enough to tell a client when to come back (Retry-After).
import { HttpError } from './errors.js'

export interface RateLimit {
  max: number
  windowMs: number
}

export function rateLimiter({ max, windowMs }: RateLimit, now: () => number = Date.now): (principal: string) => void {
  let windowStart = now()
  let counts = new Map<string, number>()
  return (principal) => {
    const t = now()
    if (t - windowStart >= windowMs) {
      // A new window forgets every principal at once, so the map never outgrows one window.
      windowStart = t - ((t - windowStart) % windowMs)
      counts = new Map()
    }
    const n = (counts.get(principal) ?? 0) + 1
    counts.set(principal, n)
    if (n > max) {
      const retryAfter = Math.max(1, Math.ceil((windowStart + windowMs - t) / 1000))
      throw new HttpError(429, 'rate_limited', `more than ${max} requests in ${windowMs} ms; retry in ${retryAfter} s`, undefined, {
        'retry-after': String(retryAfter),
      })
    }
  }
}
