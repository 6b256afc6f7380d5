/**
 * Commands and their options, on node:util parseArgs. Every command takes the connection
 * options and `--json`/`--help`, so they are declared once here and merged into each.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { Client } from './client.js'
import { usageError } from './errors.js'

export type Options = NonNullable<ParseArgsConfig['options']>
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>

export const DEFAULT_URL = 'http://127.0.0.1:3000'

const COMMON: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

const COMMON_HELP = `Common options:
  --url URL      the lab server (env KMAPLAB_URL, default ${DEFAULT_URL})
  --token TOKEN  bearer token (env KMAPLAB_TOKEN), when the server has principals
  --json         machine-readable output: one JSON document on stdout
  -h, --help     this help`

export interface Command {
  /** The words that select it, e.g. `machine create`. */
  name: string
  /** Arguments after the name, e.g. `MACHINE [--at SEQ]`. */
  usage: string
  summary: string
  /** Options and details, printed by --help after the usage line. */
  help: string
  options?: Options
  run(ctx: Context): Promise<number>
}

export interface Context {
  values: Values
  positionals: string[]
  json: boolean
  client: Client
  /** Raises a usage error that points at this command's help. */
  usage(message: string): never
}

export function helpText(cmd: Command): string {
  return `kmaplab ${cmd.name} ${cmd.usage}\n\n${cmd.summary}\n\n${cmd.help.trim()}\n\n${COMMON_HELP}\n`
}

export function parseCommand(cmd: Command, argv: string[], env: NodeJS.ProcessEnv): Context | 'help' {
  let parsed: { values: Values; positionals: string[] }
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...cmd.options }, allowPositionals: true, strict: true })
  } catch (err) {
    throw usageError(`${cmd.name}: ${(err as Error).message}`, cmd.name)
  }
  const { values, positionals } = parsed
  if (values.help) return 'help'
  const url = (values.url as string | undefined) ?? env.KMAPLAB_URL ?? DEFAULT_URL
  try {
    new URL(url)
  } catch {
    throw usageError(`${cmd.name}: --url ${url} is not a URL (e.g. ${DEFAULT_URL})`, cmd.name)
  }
  const token = (values.token as string | undefined) ?? (env.KMAPLAB_TOKEN || undefined)
  return {
    values,
    positionals,
    json: values.json === true,
    client: new Client({ url, token }),
    usage: (message) => {
      throw usageError(`${cmd.name}: ${message}`, cmd.name)
    },
  }
}

/** A non-negative integer option, or undefined when absent. */
export function intOption(ctx: Context, name: string): number | undefined {
  const raw = ctx.values[name]
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n)) ctx.usage(`--${name} ${String(raw)}: expected a non-negative integer`)
  return n
}

/** A comma-separated list option (`--cpus 0,2`), possibly repeated. */
export function listOption(ctx: Context, name: string): string[] | undefined {
  const raw = ctx.values[name]
  if (raw === undefined) return undefined
  return [raw]
    .flat()
    .flatMap((v) => String(v).split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '')
}
