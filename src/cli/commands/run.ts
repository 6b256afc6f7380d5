/**
 * `kmaplab run`: scenario files on the lab server, each on a fresh machine, checked step by
 * step; PASS or FAIL with the first mismatch as a small diff. Exit status 1 on any failure,
 * so a kernel project's CI can run its scenarios as a test.
 */
import { intOption, type Command, type Context } from '../args.js'
import { EXIT } from '../errors.js'
import { httpExecutors } from '../http-executor.js'
import { emit } from '../output.js'
import { machinePath } from './machine.js'
import { inOrder, scenarioProblem } from '../scenarios.js'
import { readScenario } from '../../scenario/format.js'
import { formatRun } from '../../scenario/report.js'
import { runScenario, type Mismatch } from '../../scenario/run.js'

interface Outcome {
  file: string
  scenario: string | null
  passed: boolean
  steps: number
  failure: Mismatch | null
  /** Why the scenario could not run (unreadable, bad format, config refused). */
  error: string | null
  /** The machine, kept when the run failed (or with --keep); null once deleted. */
  machine: string | null
}

/** Where a failed run left its machine, for a look with `kmaplab state`. */
function keptLine(o: Outcome): string {
  return o.machine && !o.passed ? `  file ${o.file}, machine ${o.machine} kept: kmaplab state ${o.machine}\n` : ''
}

async function runFile(ctx: Context, file: string, keep: boolean): Promise<{ outcome: Outcome; text: string }> {
  const { factory, machines } = httpExecutors(ctx.client)
  try {
    const scenario = await readScenario(file)
    const report = await runScenario(scenario, factory)
    const machine = machines[0] ?? null
    const kept = keep || !report.passed
    if (!kept && machine) await ctx.client.delete(machinePath(machine))
    const { passed, failure } = report
    const outcome = { file, scenario: report.scenario, passed, steps: report.steps.length, failure, error: null, machine: kept ? machine : null }
    return { outcome, text: formatRun(report) + keptLine(outcome) }
  } catch (err) {
    const problem = scenarioProblem(err, file)
    if (problem === null) throw err
    const outcome = { file, scenario: null, passed: false, steps: 0, failure: null, error: problem, machine: machines[0] ?? null }
    return { outcome, text: `ERROR ${file}\n  ${problem}\n` + keptLine(outcome) }
  }
}

export const runCommand: Command = {
  name: 'run',
  usage: 'SCENARIO... [--jobs N] [--keep]',
  summary: "Run scenario files on the server and check their expectations (PASS/FAIL).",
  help: `Each scenario (docs/scenarios.md) runs on a fresh machine created from its own config;
the first mismatch is printed as a diff (expected / got) with its step.
  --jobs N   scenarios run at once (default 4); output stays in file order
  --keep     keep every machine (by default only a failed run's machine is kept)
Exit status: 0 all passed, 1 a scenario failed or is invalid, 3 no server or another error.

Example (CI): kmaplab run examples/*.yaml`,
  options: { jobs: { type: 'string', short: 'j' }, keep: { type: 'boolean' } },
  async run(ctx: Context) {
    if (ctx.positionals.length === 0) ctx.usage('name one or more scenario files')
    const jobs = intOption(ctx, 'jobs') ?? 4
    if (jobs < 1) ctx.usage('--jobs must be at least 1')
    const keep = ctx.values.keep === true
    const runs = await inOrder(ctx.positionals, jobs, (f) => runFile(ctx, f, keep), (r) => {
      if (!ctx.json) process.stdout.write(r.text)
    })
    const outcomes = runs.map((r) => r.outcome)
    const failed = outcomes.filter((o) => !o.passed).length
    const passed = failed === 0
    if (ctx.json) emit(ctx, { passed, scenarios: outcomes }, () => '')
    else if (outcomes.length > 1) process.stdout.write(`\n${outcomes.length - failed} passed, ${failed} failed\n`)
    return passed ? EXIT.ok : EXIT.failed
  },
}
