/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (never into a log
 * or a pipe), redrawn at most ten times a second so it costs nothing on a fast export.
 */
const WIDTH = 30
const EVERY_MS = 100

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(1)} ${units[u]}`
}

export class Progress {
  private last = 0
  private readonly started = Date.now()
  private readonly enabled: boolean

  /** `total` events when the count is known; null draws bytes only. */
  constructor(
    private readonly label: string,
    private readonly total: number | null,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = stream.isTTY === true
  }

  update(bytes: number, events: number | null, force = false): void {
    if (!this.enabled) return
    const now = Date.now()
    if (!force && now - this.last < EVERY_MS) return
    this.last = now
    const secs = Math.max((now - this.started) / 1000, 0.001)
    const rate = `${formatBytes(bytes / secs)}/s`
    let line: string
    if (this.total !== null && this.total > 0 && events !== null) {
      const done = Math.min(events / this.total, 1)
      const fill = Math.round(done * WIDTH)
      line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(WIDTH - fill)}] ${(done * 100).toFixed(0).padStart(3)}%  ${Math.min(events, this.total)}/${this.total} events  ${formatBytes(bytes)}  ${rate}`
    } else {
      line = `${this.label} ${formatBytes(bytes)}${this.total !== null ? ` (${this.total} events)` : ''}  ${rate}`
    }
    this.stream.write(`\r${line.slice(0, (this.stream.columns || 120) - 1)}\x1b[K`)
  }

  /** Draws the final figures and ends the line. */
  finish(bytes: number, events: number | null): void {
    if (!this.enabled) return
    this.update(bytes, events, true)
    this.stream.write('\n')
  }
}
