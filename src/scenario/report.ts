/** Human-readable text for a scenario run: a pass line, or the first mismatch as a small diff. */
import { stringify } from 'yaml'
import type { RunReport } from './run.js'

/** A value on one line when short, else as indented YAML (what the scenario file looks like). */
function show(v: unknown): string[] {
  if (v === undefined) return ['(nothing)']
  const one = JSON.stringify(v)
  if (one.length <= 72) return [one]
  return stringify(v, { lineWidth: 0 }).trimEnd().split('\n')
}

export function formatRun(report: RunReport): string {
  const f = report.failure
  if (f === null) return `PASS ${report.scenario} (${report.steps.length} steps)\n`
  const where = f.step === 0 ? 'declared tasks' : `step ${f.step}`
  const lines = [`FAIL ${report.scenario}`, `  at ${where}: ${f.label}`, `  ${f.path}:`]
  for (const l of show(f.expected)) lines.push(`  - expected  ${l}`)
  for (const l of show(f.got)) lines.push(`  + got       ${l}`)
  return lines.join('\n') + '\n'
}
