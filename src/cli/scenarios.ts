/**
 * What `run` and `convert-check` share: telling a scenario's own failures from the CLI's,
 * and working through several files a few at a time while printing in file order.
 */
import { ScenarioFormatError } from '../scenario/format.js'
import { CliError, EXIT } from './errors.js'

/**
 * A failure that is the scenario's own (unreadable, not in the format, a task name it never
 * declared, a config the server refuses), as the message to print for it; null for anything
 * else (no server, an API error), which stops the command.
 */
export function scenarioProblem(err: unknown, file: string): string | null {
  if (err instanceof ScenarioFormatError) return `${err.source === undefined ? `${file}: ` : ''}${err.message} (the format: docs/scenarios.md)`
  if (err instanceof CliError) return err.exitCode === EXIT.failed ? err.message : null
  const code = (err as NodeJS.ErrnoException).code
  return typeof code === 'string' && code.startsWith('E') ? `cannot read ${file}: ${code}` : null
}

/**
 * Runs `work` on every item, at most `jobs` at once, and hands each result to `done` in the
 * items' order as soon as it and all before it are ready. The first rejection (in order)
 * is thrown; the caller exits then, so work still running does not matter.
 */
export async function inOrder<T, R>(items: readonly T[], jobs: number, work: (item: T) => Promise<R>, done: (result: R, item: T) => void): Promise<R[]> {
  let active = 0
  const waiting: (() => void)[] = []
  const limited = async (item: T): Promise<R> => {
    if (active >= jobs) await new Promise<void>((resolve) => waiting.push(resolve))
    active++
    try {
      return await work(item)
    } finally {
      active--
      waiting.shift()?.()
    }
  }
  const all = items.map(limited)
  // Awaited in order below; until then a rejection must not count as unhandled.
  for (const p of all) p.catch(() => {})
  const out: R[] = []
  for (const [i, p] of all.entries()) {
    const r = await p
    done(r, items[i]!)
    out.push(r)
  }
  return out
}
