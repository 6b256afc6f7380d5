/** One step's expectation against what the step did: the first difference, or null. */
import type { State } from '../sim/index.js'
import type { Expectation } from './format.js'
import { firstDifference, type Difference } from './match.js'
import type { StepRecord } from './run.js'

/** Diagnostic ids fired while the step ran, in order. */
export function firedIds(record: StepRecord): string[] {
  return record.events.filter((e) => e.type === 'diagnostic').map((e) => String(e.id))
}

export function checkExpectation(
  expect: Expectation | null,
  record: StepRecord,
  state: State | null,
  names: ReadonlyMap<string, number>,
): Difference | null {
  const refused = record.refusal
  if (expect?.error !== undefined) {
    if (refused?.code === expect.error) return null
    return { path: 'expect.error', expected: expect.error, got: refused === null ? { result: record.result } : refused }
  }
  if (refused !== null) return { path: 'error', expected: 'the op to be accepted', got: refused }
  if (expect === null) return null
  if (expect.result !== undefined) {
    const d = firstDifference(expect.result, record.result, 'expect.result', names)
    if (d !== null) return d
  }
  const fired = firedIds(record)
  const missing = (expect.diagnostics ?? []).filter((id) => !fired.includes(id))
  if (missing.length > 0) return { path: 'expect.diagnostics', expected: expect.diagnostics, got: fired }
  if (expect.noDiagnostics === true && fired.length > 0) return { path: 'expect.noDiagnostics', expected: [], got: fired }
  const forbidden = (expect.notDiagnostics ?? []).filter((id) => fired.includes(id))
  if (forbidden.length > 0) return { path: 'expect.notDiagnostics', expected: `none of ${expect.notDiagnostics!.join(', ')}`, got: fired }
  if (expect.state !== undefined) return firstDifference(expect.state, state, 'expect.state', names)
  return null
}
