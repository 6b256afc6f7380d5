// openapi.yaml is the single source of request validation: the app registers exactly the
// operations it lists, each with the JSON Schemas of its parameters and body.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifySchema, HTTPMethods } from 'fastify'
import { parse } from 'yaml'

// Two levels up from src/api/ or dist/api/ is the project root in both layouts.
export const specFile = fileURLToPath(new URL('../../openapi.yaml', import.meta.url))

export interface SpecOperation {
  operationId: string
  method: HTTPMethods
  /** The OpenAPI path, e.g. `/v1/machines/{id}`. */
  path: string
  /** The same path in fastify's syntax, e.g. `/v1/machines/:id`. */
  url: string
  schema: FastifySchema
  /** Routes with `security: []` need no token and are not rate-limited. */
  public: boolean
}

export interface Spec {
  text: string
  document: Record<string, unknown>
  operations: SpecOperation[]
}

type Json = Record<string, unknown>

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const

/** Replaces every local `$ref` by the object it points at (the document has no cycles). */
function deref(node: unknown, root: Json): unknown {
  if (Array.isArray(node)) return node.map((n) => deref(n, root))
  if (typeof node !== 'object' || node === null) return node
  const obj = node as Json
  if (typeof obj.$ref === 'string') {
    const target = obj.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<unknown>((at, key) => (at as Json | undefined)?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], root)
    if (target === undefined) throw new Error(`openapi.yaml: unresolved $ref ${obj.$ref}`)
    return deref(target, root)
  }
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, deref(v, root)]))
}

interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema: Json
}

function parameterSchema(params: Parameter[], where: Parameter['in']): Json | undefined {
  const mine = params.filter((p) => p.in === where)
  if (mine.length === 0) return undefined
  // HTTP header names arrive lower-cased.
  const name = (p: Parameter): string => (where === 'header' ? p.name.toLowerCase() : p.name)
  return {
    type: 'object',
    properties: Object.fromEntries(mine.map((p) => [name(p), p.schema])),
    required: mine.filter((p) => p.required).map(name),
  }
}

export function loadSpec(file = specFile): Spec {
  const text = readFileSync(file, 'utf8')
  const document = parse(text) as Json
  const paths = deref(document.paths, document) as Record<string, Json>
  const globalSecurity = document.security as unknown[] | undefined
  const operations: SpecOperation[] = []
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined
      if (!op) continue
      const params = [...((item.parameters as Parameter[]) ?? []), ...((op.parameters as Parameter[]) ?? [])]
      const body = (op.requestBody as { content?: Record<string, { schema?: Json }> } | undefined)?.content?.[
        'application/json'
      ]?.schema
      const schema: FastifySchema = {}
      const pathParams = parameterSchema(params, 'path')
      const query = parameterSchema(params, 'query')
      const headers = parameterSchema(params, 'header')
      if (pathParams) schema.params = pathParams
      if (query) schema.querystring = { ...query, additionalProperties: false }
      if (headers) schema.headers = headers
      if (body) schema.body = body
      const security = (op.security as unknown[] | undefined) ?? globalSecurity ?? []
      operations.push({
        operationId: String(op.operationId),
        method: method.toUpperCase() as HTTPMethods,
        path,
        url: path.replace(/\{(\w+)\}/g, ':$1'),
        schema,
        public: security.length === 0,
      })
    }
  }
  return { text, document, operations }
}
