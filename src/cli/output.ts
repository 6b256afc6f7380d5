/** What a command prints: its JSON document with --json, else text for people. */
import type { Context } from './args.js'

export function emit(ctx: Context, json: unknown, text: () => string): void {
  process.stdout.write(ctx.json ? JSON.stringify(json, null, 2) + '\n' : text())
}

/** Left-aligned columns under a header, for listings. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}
