/** `kmaplab machine create|list|show|rm`: machines of the caller on the lab server. */
import { intOption, type Command, type Context } from '../args.js'
import { parseJson, readText } from '../input.js'
import { emit, table } from '../output.js'
import { EXIT } from '../errors.js'
// A type only (erased at build): the API's machine document, as the service defines it.
import type { MachineInfo as ServedMachine } from '../../service/machines.js'

/** The machine document as the CLI reads it: the effective config is a JSON object. */
export type MachineInfo = Omit<ServedMachine, 'config'> & { config: Record<string, unknown> }

function machineId(ctx: Context): string {
  const [id, ...rest] = ctx.positionals
  if (id === undefined) ctx.usage('name the machine (an id like m_AbCdEfGhIjKl; see `kmaplab machine list`)')
  if (rest.length > 0) ctx.usage(`unexpected arguments: ${rest.join(' ')}`)
  return id
}

/** `/v1/machines/<id>` with the id escaped, so a mistyped id is a 400/404, never another path. */
export function machinePath(id: string, rest = ''): string {
  return `/v1/machines/${encodeURIComponent(id)}${rest}`
}

/** The config from an argument (inline JSON, a file, or `-`), then the flags on top. */
async function configOf(ctx: Context): Promise<Record<string, unknown>> {
  const [source, ...rest] = ctx.positionals
  if (rest.length > 0) ctx.usage(`unexpected arguments: ${rest.join(' ')}`)
  let config: Record<string, unknown> = {}
  if (source !== undefined) {
    const text = source.trimStart().startsWith('{') ? source : await readText(source)
    const doc = parseJson(text, source.trimStart().startsWith('{') ? 'the config' : source)
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) ctx.usage('the config must be a JSON object (contract section 2)')
    config = doc as Record<string, unknown>
  }
  const v = ctx.values
  if (v.arch !== undefined) config.arch = v.arch
  if (v.kernel !== undefined) config.kernel = v.kernel
  const cpus = intOption(ctx, 'cpus')
  if (cpus !== undefined) config.cpus = cpus
  const seed = intOption(ctx, 'seed')
  if (seed !== undefined) config.seed = seed
  return config
}

function describe(m: MachineInfo): string {
  const c = m.config
  const on = Object.entries((c.config as Record<string, boolean> | undefined) ?? {})
    .filter(([, v]) => v === true)
    .map(([k]) => k)
  const lines = [
    `${m.id}  ${m.status}${m.diverged ? ` (diverged: ${m.diverged})` : ''}`,
    `  ${String(c.arch)}, ${String(c.cpus)} CPUs, kernel ${String(c.kernel)}, seed ${String(c.seed)}`,
    `  config: ${on.join(' ') || '(all switches off)'}`,
    `  seq ${m.seq}, ${m.opCount} ops, created ${m.createdAt}`,
  ]
  if (m.parent) lines.push(`  branched from ${m.parent.id} at seq ${m.parent.seq}`)
  return lines.join('\n') + '\n'
}

const create: Command = {
  name: 'machine create',
  usage: '[CONFIG] [--arch A] [--cpus N] [--kernel V] [--seed N]',
  summary: 'Create a machine and print its id (with --json, the effective config).',
  help: `CONFIG is a machine config (contract section 2) as inline JSON, a file, or - for stdin;
the flags set single fields on top of it.
  --arch x86_32|x86_64   --cpus 1..64   --kernel 5.11.0|5.11.11|5.15|5.17|5.18|6.1   --seed N

Example:
  M=$(kmaplab machine create --arch x86_32 --cpus 4)
  kmaplab machine create '{"arch":"x86_32","config":{"X86_PAE":true}}'`,
  options: { arch: { type: 'string' }, cpus: { type: 'string' }, kernel: { type: 'string' }, seed: { type: 'string' } },
  async run(ctx: Context) {
    const m = await ctx.client.post<MachineInfo>('/v1/machines', await configOf(ctx))
    emit(ctx, m, () => m.id + '\n')
    return EXIT.ok
  },
}

const list: Command = {
  name: 'machine list',
  usage: '',
  summary: 'List your machines.',
  help: 'Every machine the token may see, in id order (all pages).',
  async run(ctx: Context) {
    if (ctx.positionals.length > 0) ctx.usage(`unexpected arguments: ${ctx.positionals.join(' ')}`)
    const machines: MachineInfo[] = []
    for (let after: string | null = ''; after !== null; ) {
      const page: { machines: MachineInfo[]; next: string | null } = await ctx.client.get(`/v1/machines?limit=1000${after ? `&after=${after}` : ''}`)
      machines.push(...page.machines)
      after = page.next
    }
    emit(ctx, { machines }, () =>
      machines.length === 0
        ? 'no machines (create one with `kmaplab machine create`)\n'
        : table(
            ['ID', 'STATUS', 'ARCH', 'CPUS', 'KERNEL', 'SEQ', 'OPS', 'CREATED'],
            machines.map((m) => [m.id, m.status, String(m.config.arch), String(m.config.cpus), String(m.config.kernel), String(m.seq), String(m.opCount), m.createdAt]),
          ),
    )
    return EXIT.ok
  },
}

const show: Command = {
  name: 'machine show',
  usage: 'MACHINE',
  summary: "Show a machine: its effective config, seq, op count and status.",
  help: 'With --json, the API\'s machine document, including the derived constants (KM_MAX_IDX, FIX_KMAP_BEGIN, ...).',
  async run(ctx: Context) {
    const m = await ctx.client.get<MachineInfo>(machinePath(machineId(ctx)))
    emit(ctx, m, () => describe(m))
    return EXIT.ok
  },
}

const rm: Command = {
  name: 'machine rm',
  usage: 'MACHINE',
  summary: 'Delete a machine, its op log and its trace.',
  help: 'There is no undo.',
  async run(ctx: Context) {
    const id = machineId(ctx)
    await ctx.client.delete(machinePath(id))
    emit(ctx, { deleted: id }, () => `deleted ${id}\n`)
    return EXIT.ok
  },
}

export const machineCommands = [create, list, show, rm]
