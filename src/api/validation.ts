// Request validation with the schemas of openapi.yaml (JSON Schema 2020-12, as OpenAPI 3.1
// says). Bodies are checked strictly: a string where the spec says integer is a 400, not
// a coercion. Query strings, paths and headers are text on the wire, so they are coerced.
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js'
import type { FastifySchemaCompiler } from 'fastify'

const common = { strict: false, allErrors: false, useDefaults: true, validateFormats: false } as const
const strictAjv = new Ajv2020({ ...common, coerceTypes: false })
const coercingAjv = new Ajv2020({ ...common, coerceTypes: 'array' })

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? strictAjv : coercingAjv).compile(schema as object)

/** A strict validator for JSON that arrives outside a request body (WebSocket messages). */
export function compileStrict(schema: object): { (data: unknown): boolean; errors?: ErrorObject[] | null } {
  return strictAjv.compile(schema)
}

/** `/ops/3/page` -> `ops[3].page`. */
function fieldOf(e: ErrorObject): string {
  const parts = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  const extra = (e.params as { missingProperty?: string; additionalProperty?: string })
  const leaf = extra.missingProperty ?? extra.additionalProperty
  if (leaf !== undefined) parts.push(leaf)
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '')
}

/** The most specific error: the deepest path wins, since outer ones (oneOf, if/then) only summarise. */
export function describeValidation(errors: readonly ErrorObject[], context: string): { field: string; message: string } {
  const depth = (e: ErrorObject): number => e.instancePath.split('/').length
  let best = errors[0]!
  for (const e of errors) if (depth(e) > depth(best)) best = e
  const field = fieldOf(best) || (context === 'body' ? 'body' : context)
  const what = (best.params as { additionalProperty?: string }).additionalProperty !== undefined ? 'is not a known field' : best.message ?? 'is invalid'
  const allowed = (best.params as { allowedValues?: unknown[] }).allowedValues
  return { field, message: `${field} ${what}${allowed ? `: one of ${allowed.join(', ')}` : ''}` }
}
