/**
 * How the CLI fails. Every failure is one sentence that says what to do next, and an exit
 * code a script can tell apart from a verdict: 1 is reserved for "the check said no" (a
 * scenario failed, a conversion is unsafe, an op was refused), so CI can trust it.
 */
export const EXIT = {
  ok: 0,
  /** A scenario failed, a conversion is unsafe, an op was refused. */
  failed: 1,
  /** The command line is wrong. */
  usage: 2,
  /** The command could not run: no server, an API error, an unreadable file. */
  error: 3,
} as const

export class CliError extends Error {
  override name = 'CliError'
  constructor(
    message: string,
    readonly exitCode: number = EXIT.error,
  ) {
    super(message)
  }
}

export function usageError(message: string, command: string): CliError {
  return new CliError(`${message}\nsee: kmaplab ${command} --help`.trimEnd(), EXIT.usage)
}
