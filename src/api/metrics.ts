// Prometheus text exposition, written by hand: a few counters, gauges read on demand and one
// histogram do not justify a metrics library on the hot path.
import type { CommitStats } from '../service/store-types.js'

export interface Gauges {
  opsApplied: () => number
  liveMachines: () => number
  subscribers: () => number
}

const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

export class Metrics {
  /** By `method status route`, in first-seen order, with the labels escaped once per series. */
  private readonly requests = new Map<string, { labels: string; n: number }>()
  private readonly commitBuckets = COMMIT_BUCKETS.map(() => 0)
  private commitSum = 0
  private commitCount = 0
  private eventsStored = 0

  constructor(private readonly gauges: Gauges) {}

  countRequest(method: string, route: string, status: number): void {
    const key = `${method} ${status} ${route}`
    const series = this.requests.get(key)
    if (series) series.n++
    else this.requests.set(key, { labels: `method="${escapeLabel(method)}",route="${escapeLabel(route)}",status="${status}"`, n: 1 })
  }

  observeCommit(stats: CommitStats): void {
    this.commitCount++
    this.commitSum += stats.seconds
    COMMIT_BUCKETS.forEach((le, i) => {
      if (stats.seconds <= le) this.commitBuckets[i]!++
    })
  }

  observeEventsStored(n: number): void {
    this.eventsStored += n
  }

  render(): string {
    const lines: string[] = []
    const family = (name: string, type: string, help: string): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    }
    family('kmaplab_http_requests_total', 'counter', 'HTTP requests by method, route and status.')
    for (const { labels, n } of this.requests.values()) lines.push(`kmaplab_http_requests_total{${labels}} ${n}`)
    family('kmaplab_ops_applied_total', 'counter', 'Ops applied to machines (committed or about to be).')
    lines.push(`kmaplab_ops_applied_total ${this.gauges.opsApplied()}`)
    family('kmaplab_events_stored_total', 'counter', 'Trace events written to the store\'s events table.')
    lines.push(`kmaplab_events_stored_total ${this.eventsStored}`)
    family('kmaplab_commit_seconds', 'histogram', 'Duration of one group-commit transaction.')
    COMMIT_BUCKETS.forEach((le, i) => lines.push(`kmaplab_commit_seconds_bucket{le="${le}"} ${this.commitBuckets[i]}`))
    lines.push(`kmaplab_commit_seconds_bucket{le="+Inf"} ${this.commitCount}`)
    lines.push(`kmaplab_commit_seconds_sum ${this.commitSum}`, `kmaplab_commit_seconds_count ${this.commitCount}`)
    family('kmaplab_live_machines', 'gauge', 'Machines held in memory.')
    lines.push(`kmaplab_live_machines ${this.gauges.liveMachines()}`)
    family('kmaplab_subscribers', 'gauge', 'Event subscribers attached to the hub.')
    lines.push(`kmaplab_subscribers ${this.gauges.subscribers()}`)
    return lines.join('\n') + '\n'
  }
}
