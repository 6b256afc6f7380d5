/**
 * Human-readable text for a scenario run (a pass line, or the first mismatch as a small
 * diff) and for a convert-check report (the verdict, then each divergence by step).
 */
import { stringify } from 'yaml'
import type { ConvertReport } from './convert-check.js'
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

export function formatConvertCheck(report: ConvertReport): string {
  const lines = [`convert-check ${report.scenario}: ${report.safe ? 'SAFE' : 'UNSAFE'}`]
  if (report.conversions.length === 0) lines.push('  nothing to convert (no kmap_atomic*, kunmap_atomic or io_mapping_*_atomic op)')
  else lines.push(`  converted: ${report.conversions.map((c) => `step ${c.step} ${c.from} -> ${c.to}`).join(', ')}`)
  if (report.divergences.length === 0 && report.conversions.length > 0) lines.push('  no divergence')
  for (const d of report.divergences) {
    lines.push(`  step ${d.step} [${d.severity}] ${d.kind}: ${d.explanation}`)
    lines.push(`      as written: ${JSON.stringify(d.asWritten)}`, `      converted:  ${JSON.stringify(d.converted)}`)
  }
  return lines.join('\n') + '\n'
}
