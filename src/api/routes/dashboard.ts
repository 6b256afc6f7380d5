// The live dashboard: the static files of web/ (plain ES modules and CSS, no build step).
// They are few and small, so they are read once at start-up and served from memory, and only
// names found there can be asked for.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { notFound } from '../../service/errors.js'
import type { Handlers } from './types.js'

// Three levels up from src/api/routes/ or dist/api/routes/ is the project root in both layouts.
export const webDir = fileURLToPath(new URL('../../../web/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

// The page talks to this server only: its own scripts, styles and API (fetch and WebSocket).
const HEADERS = {
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
}

interface Asset {
  body: Buffer
  type: string
  etag: string
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)]
    if (!type) continue
    const body = readFileSync(join(dir, name))
    assets.set(name, { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` })
  }
  return assets
}

export function dashboardHandlers(dir = webDir): Handlers {
  const assets = loadAssets(dir)
  const serve = (name: string): Handlers[string] => async (req, reply) => {
    const asset = assets.get(name)
    if (!asset) throw notFound(`file ${name}`)
    reply.headers({ ...HEADERS, etag: asset.etag })
    if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    return reply.type(asset.type).send(asset.body)
  }
  return {
    dashboard: serve('index.html'),
    dashboardAsset: async (req, reply) => serve((req.params as { file: string }).file)(req, reply),
  }
}
