#!/usr/bin/env node
/**
 * kmaplab: the lab server's command line. `kmaplab serve` runs the server; every other
 * command is a client of a running one over HTTP (and WebSocket for `tail`).
 */
import { createRequire } from 'node:module'
import { helpText, parseCommand, type Command } from './args.js'
import { CliError, EXIT } from './errors.js'
import { convertCheckCommand } from './commands/convert-check.js'
import { exportCommand } from './commands/export.js'
import { machineCommands } from './commands/machine.js'
import { opCommand } from './commands/op.js'
import { runCommand } from './commands/run.js'
import { serveCommand } from './commands/serve.js'
import { stateCommand } from './commands/state.js'
import { tailCommand } from './commands/tail.js'

const COMMANDS: Command[] = [serveCommand, ...machineCommands, opCommand, stateCommand, tailCommand, exportCommand, runCommand, convertCheckCommand]

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return `kmaplab: simulated x86 machines for kmap_local, kmap_atomic and kmap

Usage: kmaplab <command> [options]     (kmaplab <command> --help for its options)

${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Client commands talk to a running server: --url (env KMAPLAB_URL, default
http://127.0.0.1:3000) and --token (env KMAPLAB_TOKEN); --json prints JSON.
Exit status: 0 ok, 1 failed check (scenario, conversion, refused op), 2 usage, 3 error.
`
}

function version(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string }
  return pkg.version
}

/** The command named by the leading words of argv (`machine create`), and the rest. */
function resolve(argv: string[]): { cmd: Command; rest: string[] } | null {
  for (const cmd of COMMANDS) {
    const words = cmd.name.split(' ')
    if (words.every((w, i) => argv[i] === w)) return { cmd, rest: argv.slice(words.length) }
  }
  return null
}

async function main(argv: string[]): Promise<number> {
  const first = argv[0]
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    // Asked for, the overview is output; given no command, it is a usage error.
    const out = first === undefined ? process.stderr : process.stdout
    out.write(overview())
    return first === undefined ? EXIT.usage : EXIT.ok
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(version() + '\n')
    return EXIT.ok
  }
  const found = resolve(argv)
  if (!found) {
    const group = COMMANDS.filter((c) => c.name.startsWith(first + ' '))
    const hint = group.length > 0 ? `${first} takes one of: ${group.map((c) => c.name.split(' ')[1]).join(', ')}` : `unknown command "${first}"`
    process.stderr.write(`kmaplab: ${hint}\nsee: kmaplab --help\n`)
    return EXIT.usage
  }
  const ctx = parseCommand(found.cmd, found.rest, process.env)
  if (ctx === 'help') {
    process.stdout.write(helpText(found.cmd))
    return EXIT.ok
  }
  return found.cmd.run(ctx)
}

main(process.argv.slice(2)).then(
  (code) => {
    // Idle keep-alive sockets would hold the process open for seconds after the work is done.
    process.exitCode = code
    setImmediate(() => process.exit(code))
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`kmaplab: ${err.message}\n`)
      process.exit(err.exitCode)
    }
    process.stderr.write(`kmaplab: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(EXIT.error)
  },
)
