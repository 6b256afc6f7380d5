// Principals and bearer tokens. Tokens are kept only as SHA-256 hashes (they are random
// secrets, so a fast hash is enough) and compared in constant time against every principal,
// so neither the token nor which principal it is close to leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyRequest } from 'fastify'
import { HttpError } from './errors.js'

export interface Principal {
  name: string
  tokenHash: Buffer
}

/** The one principal of a server started without tokens (loopback only). */
export const LOCAL_PRINCIPAL = 'local'

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/

function principal(name: string, tokenHash: Buffer, where: string): Principal {
  if (!NAME.test(name)) throw new Error(`${where}: principal name ${JSON.stringify(name)} must match ${NAME}`)
  return { name, tokenHash }
}

/**
 * `KMAPLAB_TOKENS="alice=secret1,bob=secret2"` (plain tokens, hashed on read) and/or a file
 * named by `KMAPLAB_TOKENS_FILE` with one `name sha256-hex-of-token` per line, so that the
 * tokens are never stored in clear (`scripts/hash-token.sh` prints such a line).
 */
export function loadPrincipals(env: NodeJS.ProcessEnv): Principal[] {
  const out: Principal[] = []
  for (const pair of (env.KMAPLAB_TOKENS ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=')
    if (eq <= 0 || eq === pair.length - 1) throw new Error('KMAPLAB_TOKENS: expected name=token[,name=token...]')
    out.push(principal(pair.slice(0, eq), hashToken(pair.slice(eq + 1)), 'KMAPLAB_TOKENS'))
  }
  if (env.KMAPLAB_TOKENS_FILE) {
    const lines = readFileSync(env.KMAPLAB_TOKENS_FILE, 'utf8').split('\n')
    lines.forEach((line, i) => {
      const text = line.trim()
      if (!text || text.startsWith('#')) return
      const m = /^(\S+)\s+([0-9a-f]{64})$/.exec(text)
      if (!m) throw new Error(`KMAPLAB_TOKENS_FILE line ${i + 1}: expected "name sha256-hex"`)
      out.push(principal(m[1]!, Buffer.from(m[2]!, 'hex'), 'KMAPLAB_TOKENS_FILE'))
    })
  }
  const names = new Set<string>()
  for (const p of out) {
    if (names.has(p.name)) throw new Error(`principal ${p.name} is configured twice`)
    names.add(p.name)
  }
  return out
}

/** The bearer token of the Authorization header, or else (where allowed) of the `token` query parameter. */
function presentedToken(req: FastifyRequest, allowQuery: boolean): string | undefined {
  const header = req.headers.authorization
  if (header !== undefined) return /^Bearer\s+(\S{1,512})\s*$/i.exec(header)?.[1]
  // Browsers cannot set headers on a WebSocket, so the stream route also takes `?token=`.
  const token = allowQuery ? (req.query as { token?: unknown }).token : undefined
  return typeof token === 'string' && /^\S{1,512}$/.test(token) ? token : undefined
}

/**
 * Returns a function naming the principal of a request, or throwing 401. `allowQuery` is set
 * only for routes that browsers open as WebSockets.
 */
export function authenticator(principals: readonly Principal[]): (req: FastifyRequest, allowQuery?: boolean) => string {
  if (principals.length === 0) return () => LOCAL_PRINCIPAL
  const challenge = { 'www-authenticate': 'Bearer realm="kmaplab"' }
  return (req, allowQuery = false) => {
    const token = presentedToken(req, allowQuery)
    if (token === undefined) throw new HttpError(401, 'unauthorized', 'send Authorization: Bearer <token>', undefined, challenge)
    const presented = hashToken(token)
    let found: string | undefined
    // No early exit: every principal is compared whatever matched.
    for (const p of principals) if (timingSafeEqual(presented, p.tokenHash) && found === undefined) found = p.name
    if (found === undefined) throw new HttpError(401, 'unauthorized', 'unknown token', undefined, challenge)
    return found
  }
}
