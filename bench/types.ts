export interface BenchOptions {
  /** CI-sized run: fewer iterations, same figures. */
  quick: boolean
}

export interface BenchRow {
  /** Stable key of the figure (names carry run-dependent counts); bench/floors.json uses it. */
  id: string
  name: string
  value: number
  unit: string
  baselineName: string
  baseline: number
  /** value / baseline (or baseline / value for "lower is better" figures; say so in name). */
  ratio: number
  /** Human-readable target, e.g. ">= 0.25 of baseline and >= 2M ops/s". */
  target?: string
  /** false when the figure misses its target; the run then exits non-zero. */
  ok?: boolean
}
