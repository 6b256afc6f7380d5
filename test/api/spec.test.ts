// openapi.yaml and the app must agree in both directions, and the document must be valid.
import t from 'tap'
import SwaggerParser from '@apidevtools/swagger-parser'
import { OP_NAMES } from '../../src/sim/index.js'
import { loadSpec, specFile } from '../../src/api/spec.js'
import { openLab } from './fixtures/lab.js'

t.test('openapi.yaml is a valid OpenAPI 3.1 document', async (t) => {
  const api = (await SwaggerParser.validate(specFile)) as { openapi: string }
  t.equal(api.openapi, '3.1.0')
})

t.test('every spec operation is a route, and every route is in the spec', async (t) => {
  const lab = await openLab()
  t.teardown(lab.close)
  await lab.app.ready()
  const spec = loadSpec()
  const fromSpec = new Set(spec.operations.map((o) => `${o.method} ${o.url}`))
  // /docs is the interactive viewer of this very document, served by @fastify/swagger-ui.
  const fromApp = new Set(lab.app.routeList.filter((r) => !/^\w+ \/docs\b/.test(r)))
  t.same([...fromSpec].filter((r) => !fromApp.has(r)), [], 'spec operations without a route')
  t.same([...fromApp].filter((r) => !fromSpec.has(r)), [], 'routes missing from the spec')
  t.ok(fromSpec.size >= 15)
})

t.test('the spec knows exactly the ops the model knows', async (t) => {
  const op = (loadSpec().document as { components: { schemas: { Op: { properties: { op: { enum: string[] } } } } } }).components.schemas.Op
  t.same([...op.properties.op.enum].sort(), [...OP_NAMES].sort())
})
