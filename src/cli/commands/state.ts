/** `kmaplab state`: a machine's state document, now or as of a past seq, readable at a glance. */
import { intOption, type Command, type Context } from '../args.js'
import { EXIT } from '../errors.js'
import { emit, table } from '../output.js'
import { machinePath } from './machine.js'
import type { State } from '../../sim/index.js'

const hex = (n: number | null): string => (n === null ? '-' : '0x' + n.toString(16))

/** Counters that are non-zero, as the kernel's names would show them. */
function counters(t: State['tasks'][number]): string {
  const c = [
    t.preemptCount ? `preempt=${t.preemptCount}` : '',
    t.pagefaultDisabled ? `pf_disabled=${t.pagefaultDisabled}` : '',
    t.migrationDisabled ? `migrate_disabled=${t.migrationDisabled}` : '',
  ].filter(Boolean)
  return c.join(' ') || '-'
}

export function renderState(s: State): string {
  const parts = [`seq ${s.seq}, ts ${s.ts} ns, ${s.status}${s.haltReason ? `: ${String(s.haltReason)}` : ''}\n`]
  parts.push(
    '\n' +
      table(
        ['CPU', 'CURRENT', 'RUNQUEUE', 'IRQ', 'IRQS', 'PREEMPT', 'PINNED'],
        s.cpus.map((c) => [
          String(c.cpu),
          String(c.current),
          c.runqueue.join(',') || '-',
          c.irq.map((f) => f.kind).join('>') || '-',
          c.irqsDisabled ? 'off' : 'on',
          String(c.preemptCount) + (c.needResched ? ' N' : ''),
          String(c.nrPinned),
        ]),
      ),
  )
  if (s.tasks.length > 0)
    parts.push(
      '\n' +
        table(
          ['PID', 'NAME', 'CPU', 'STATE', 'KMAP_IDX', 'COUNTERS', 'SAVED PTES (slot:pfn)'],
          s.tasks.map((t) => [String(t.pid), t.name, String(t.cpu), t.state, String(t.kmapIdx), counters(t), t.kpte.map((p) => `${p.slot}:${hex(p.pfn)}`).join(' ') || '-']),
        ),
    )
  if (s.fixmap.length > 0)
    parts.push('\n' + table(['FIX_IDX', 'CPU', 'SLOT', 'ADDR', 'PFN', 'PROT'], s.fixmap.map((f) => [String(f.fixIdx), String(f.cpu ?? '-'), String(f.slot ?? '-'), f.addr, hex(f.pfn), f.prot])))
  if (s.pkmap && s.pkmap.slots.length > 0)
    parts.push('\n' + table(['PKMAP_NR', 'ADDR', 'PFN', 'COUNT'], s.pkmap.slots.map((p) => [String(p.nr), p.addr, hex(p.pfn), String(p.count)])))
  if (s.diagnostics.length > 0) parts.push('\ndiagnostics:\n' + s.diagnostics.map((d) => `  ${d.id} ${d.kind} at seq ${d.seq}: ${d.message.split('\n')[0]}`).join('\n') + '\n')
  return parts.join('')
}

export const stateCommand: Command = {
  name: 'state',
  usage: 'MACHINE [--at SEQ]',
  summary: "Show a machine's CPUs, tasks, fixmap, pkmap pool and diagnostics.",
  help: `  --at SEQ   the state as it was at SEQ (replayed on the server up to the last op ending
             at or before it)
With --json, the contract's state document as is.`,
  options: { at: { type: 'string' } },
  async run(ctx: Context) {
    const [id, ...rest] = ctx.positionals
    if (id === undefined) ctx.usage('name the machine (see `kmaplab machine list`)')
    if (rest.length > 0) ctx.usage(`unexpected arguments: ${rest.join(' ')}`)
    const at = intOption(ctx, 'at')
    const state = await ctx.client.get<State>(machinePath(id, '/state' + (at === undefined ? '' : `?at=${at}`)))
    emit(ctx, state, () => renderState(state))
    return EXIT.ok
  },
}
