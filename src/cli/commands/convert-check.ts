/**
 * `kmaplab convert-check`: runs a scenario as written and with every kmap_atomic* converted
 * to kmap_local* (spec 9.3), on two fresh server machines, and says whether the conversion
 * is safe for it. Exit status 0 safe, 1 unsafe: a gate for a conversion patch.
 */
import { intOption, type Command, type Context } from '../args.js'
import { EXIT } from '../errors.js'
import { httpExecutors } from '../http-executor.js'
import { emit } from '../output.js'
import { inOrder, scenarioProblem } from '../scenarios.js'
import { convertCheck, type ConvertReport } from '../../scenario/convert-check.js'
import { readScenario } from '../../scenario/format.js'
import { formatConvertCheck } from '../../scenario/report.js'
import { machinePath } from './machine.js'

type Checked = { file: string; report: ConvertReport; error: null } | { file: string; report: null; error: string }

async function checkFile(ctx: Context, file: string): Promise<Checked> {
  const { factory, machines } = httpExecutors(ctx.client)
  try {
    return { file, report: await convertCheck(await readScenario(file), factory), error: null }
  } catch (err) {
    const problem = scenarioProblem(err, file)
    if (problem === null) throw err
    return { file, report: null, error: problem }
  } finally {
    // Both runs are throwaway: the report says all there is to know.
    for (const id of machines) await ctx.client.delete(machinePath(id))
  }
}

export const convertCheckCommand: Command = {
  name: 'convert-check',
  usage: 'SCENARIO... [--jobs N]',
  summary: 'Would converting kmap_atomic* to kmap_local* change what this scenario does?',
  help: `Runs each scenario as written and converted (kmap_atomic -> kmap_local_page,
kunmap_atomic -> kunmap_local, ...), compares them step by step and lists every divergence:
a user copy that now faults in (and may sleep), per-CPU data in a section that is now
preemptible, a might_sleep splat that appears or disappears, other slots or addresses,
other diagnostics. Rules: docs/scenarios.md, "convert-check".
  --jobs N   scenarios checked at once (default 4)
Exit status: 0 safe, 1 unsafe (or an invalid scenario), 3 no server or another error.`,
  options: { jobs: { type: 'string', short: 'j' } },
  async run(ctx: Context) {
    if (ctx.positionals.length === 0) ctx.usage('name one or more scenario files')
    const jobs = intOption(ctx, 'jobs') ?? 4
    if (jobs < 1) ctx.usage('--jobs must be at least 1')
    const checked = await inOrder(ctx.positionals, jobs, (f) => checkFile(ctx, f), (c) => {
      if (!ctx.json) process.stdout.write(c.report ? formatConvertCheck(c.report) : `ERROR ${c.file}\n  ${c.error}\n`)
    })
    const safe = checked.every((c) => c.report?.safe === true)
    if (ctx.json) emit(ctx, { safe, scenarios: checked }, () => '')
    return safe ? EXIT.ok : EXIT.failed
  },
}
