/**
 * The mechanical kmap_atomic -> kmap_local conversion of spec 9.3: each atomic map or
 * unmap op becomes its local twin, nothing else changes. Expectations are dropped: they
 * describe the code as written, and the point is to see what the converted code does.
 */
import type { Scenario } from './format.js'

export const CONVERSIONS: Readonly<Record<string, string>> = {
  kmap_atomic: 'kmap_local_page',
  kmap_atomic_prot: 'kmap_local_page_prot',
  kmap_atomic_pfn: 'kmap_local_pfn',
  kunmap_atomic: 'kunmap_local',
  io_mapping_map_atomic_wc: 'io_mapping_map_local_wc',
  io_mapping_unmap_atomic: 'io_mapping_unmap_local',
}

/** Ops that end an atomic section (the rest of CONVERSIONS begin one). */
export const ATOMIC_UNMAPS = new Set(['kunmap_atomic', 'io_mapping_unmap_atomic'])

export interface Conversion {
  scenario: Scenario
  /** The steps (from 1) whose op was converted. */
  steps: number[]
}

export function convertScenario(s: Scenario): Conversion {
  const steps: number[] = []
  const converted = s.steps.map((step, i) => {
    const to = step.op === null ? undefined : CONVERSIONS[String(step.op.op)]
    if (to === undefined) return { ...step, expect: null }
    steps.push(i + 1)
    return { ...step, op: { ...step.op, op: to }, expect: null }
  })
  return { scenario: { ...s, steps: converted }, steps }
}
