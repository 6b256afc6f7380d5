/**
 * The scenario runner: spawns the declared tasks, applies each step through an Executor,
 * resolves task names to pids, and checks each step's expectation, stopping at the first
 * mismatch. With checking off it runs every step as written and records what happened,
 * which is what convert-check compares.
 */
import type { SimEvent, State } from '../sim/index.js'
import { OpRefusal, type Executor, type ExecutorFactory } from './executor.js'
import { checkExpectation } from './expect.js'
import { ScenarioFormatError, type Scenario } from './format.js'
import type { Difference } from './match.js'

export interface StepRecord {
  /** Position in the scenario's steps, from 1. */
  step: number
  /** The op as sent, task names resolved; null for a check-only step. */
  op: Record<string, unknown> | null
  perCpu: boolean
  result: Record<string, unknown> | null
  refusal: { code: string; message: string } | null
  events: SimEvent[]
  /** The state after the step, when the run keeps snapshots. */
  state: State | null
}

export interface Mismatch extends Difference {
  /** The failing step (from 1), or 0 while spawning the declared tasks. */
  step: number
  /** The step's op as written, e.g. `kunmap_local pid=T addr=0xfff9a800`. */
  label: string
}

export interface RunReport {
  scenario: string
  passed: boolean
  failure: Mismatch | null
  steps: StepRecord[]
  /** Task names and the pids they got. */
  tasks: Record<string, number>
}

export interface RunOptions {
  /** Check expectations and stop at the first mismatch (default true). */
  check?: boolean
  /** Keep the state after every step. */
  snapshots?: boolean
}

/** Fields of an op that take a pid, and so may take a task name. */
const PID_FIELDS = ['pid', 'target']
/** Ops that create a task whose `name` later steps may use. */
const CREATES_TASK = new Set(['spawn', 'fork'])
/** Fields shown in hex in step labels. */
const HEX_FIELDS = new Set(['page', 'pfn', 'addr', 'offset', 'base', 'size'])

/**
 * A scenario-level op, not sent to the machine: smp_processor_id() of a running task.
 * It returns the task's CPU and marks the step as using per-CPU data.
 */
export const SMP_PROCESSOR_ID = 'smp_processor_id'

export function stepLabel(op: Record<string, unknown> | null): string {
  if (op === null) return '(check)'
  const fields = Object.entries(op)
    .filter(([k]) => k !== 'op')
    .map(([k, v]) => `${k}=${typeof v === 'number' && HEX_FIELDS.has(k) ? '0x' + v.toString(16) : typeof v === 'string' ? v : JSON.stringify(v)}`)
  return [String(op.op), ...fields].join(' ')
}

function resolveNames(op: Record<string, unknown>, names: ReadonlyMap<string, number>, step: number): Record<string, unknown> {
  const out = { ...op }
  for (const f of PID_FIELDS) {
    const v = out[f]
    if (typeof v !== 'string') continue
    const pid = names.get(v)
    if (pid === undefined) throw new ScenarioFormatError(`steps[${step}].${f}`, `unknown task name "${v}"; known: ${[...names.keys()].join(', ') || 'none'}`)
    out[f] = pid
  }
  return out
}

async function smpProcessorId(ex: Executor, op: Record<string, unknown>): Promise<{ result: Record<string, unknown>; events: SimEvent[] }> {
  const task = (await ex.state()).tasks.find((t) => t.pid === op.pid)
  if (task === undefined) throw new OpRefusal('no_such_task', `no task with pid ${String(op.pid)}`)
  if (task.state !== 'running') throw new OpRefusal('not_running', `task ${task.pid} is ${task.state}, not running: it cannot ask for its CPU`)
  return { result: { cpu: task.cpu }, events: [] }
}

async function apply(ex: Executor, op: Record<string, unknown>): Promise<Pick<StepRecord, 'result' | 'refusal' | 'events'>> {
  try {
    const r = op.op === SMP_PROCESSOR_ID ? await smpProcessorId(ex, op) : await ex.apply(op)
    return { result: r.result, refusal: null, events: r.events }
  } catch (e) {
    if (!(e instanceof OpRefusal)) throw e
    return { result: null, refusal: { code: e.code, message: e.message }, events: [] }
  }
}

export async function runScenario(scenario: Scenario, factory: ExecutorFactory, options: RunOptions = {}): Promise<RunReport> {
  const check = options.check ?? true
  const ex = await factory(scenario.machine)
  const names = new Map<string, number>()
  const report = (failure: Mismatch | null, steps: StepRecord[]): RunReport => ({
    scenario: scenario.name,
    passed: failure === null,
    failure,
    steps,
    tasks: Object.fromEntries(names),
  })

  for (const [name, decl] of scenario.tasks) {
    const op = { op: 'spawn', name, ...decl }
    const r = await apply(ex, op)
    if (r.refusal !== null || typeof r.result?.pid !== 'number')
      return report({ step: 0, label: stepLabel(op), path: `tasks.${name}`, expected: 'the task to be spawned', got: r.refusal ?? r.result }, [])
    names.set(name, r.result.pid)
  }

  const records: StepRecord[] = []
  for (const [i, step] of scenario.steps.entries()) {
    const n = i + 1
    const op = step.op === null ? null : resolveNames(step.op, names, n)
    const outcome = op === null ? { result: null, refusal: null, events: [] } : await apply(ex, op)
    const perCpu = step.perCpu || op?.op === SMP_PROCESSOR_ID
    if (op !== null && CREATES_TASK.has(String(op.op)) && typeof outcome.result?.pid === 'number' && typeof op.name === 'string')
      names.set(op.name, outcome.result.pid)
    const wantsState = options.snapshots === true || (check && step.expect?.state !== undefined)
    const record: StepRecord = { step: n, op, perCpu, ...outcome, state: wantsState ? await ex.state() : null }
    records.push(record)
    if (!check) continue
    const d = checkExpectation(step.expect, record, record.state, names)
    if (d !== null) return report({ step: n, label: stepLabel(step.op), ...d }, records)
  }
  return report(null, records)
}
