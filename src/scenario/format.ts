/**
 * The scenario file format (docs/scenarios.md): a machine config, named tasks, and steps
 * that are contract ops with optional expectations. This module only reads and validates
 * the document; the model validates the ops and the config themselves when they run.
 */
import { readFile } from 'node:fs/promises'
import { parse } from 'yaml'

export interface Expectation {
  /** Deep partial match on the op's result. */
  result?: unknown
  /** Deep partial match on machine.state(); keys may be dotted paths. */
  state?: Record<string, unknown>
  /** Diagnostic ids that must fire during this step. */
  diagnostics?: string[]
  /** No diagnostic at all may fire during this step. */
  noDiagnostics?: boolean
  /** Diagnostic ids that must not fire during this step. */
  notDiagnostics?: string[]
  /** The op must be refused with this code (an OpError code, or "invalid_op"). */
  error?: string
}

export interface Step {
  /** The op as written: `op` plus its fields; pid/target may be task names. Null for a check-only step. */
  op: Record<string, unknown> | null
  expect: Expectation | null
  /** The step reads or writes per-CPU data, so it relies on staying on this CPU unpreempted. */
  perCpu: boolean
  note: string | null
}

export interface TaskDecl {
  cpu?: number
  cpus?: number[]
}

export interface Scenario {
  name: string
  description: string | null
  machine: Record<string, unknown>
  /** Spawned first, in declaration order. */
  tasks: [string, TaskDecl][]
  steps: Step[]
}

/** A scenario document that does not follow the format: `path` says where. */
export class ScenarioFormatError extends Error {
  override name = 'ScenarioFormatError'
  constructor(
    readonly path: string,
    readonly rule: string,
    readonly source?: string,
  ) {
    super(`${source === undefined ? '' : `${source}: `}${path}: ${rule}`)
  }
}

const TOP_KEYS = ['name', 'description', 'machine', 'tasks', 'steps']
const STEP_META = ['expect', 'perCpu', 'note']
const EXPECT_KEYS = ['result', 'state', 'diagnostics', 'noDiagnostics', 'notDiagnostics', 'error']
const TASK_KEYS = ['cpu', 'cpus']

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function fail(path: string, rule: string): never {
  throw new ScenarioFormatError(path, rule)
}

function onlyKeys(obj: Record<string, unknown>, allowed: string[], path: string): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) fail(`${path}${path === '' ? '' : '.'}${k}`, `unknown key; allowed: ${allowed.join(', ')}`)
}

function idList(v: unknown, path: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(path, 'must be a list of diagnostic ids such as [W4, S2]')
  return v
}

function parseExpect(v: unknown, path: string): Expectation {
  if (!isRecord(v)) fail(path, 'must be a mapping')
  onlyKeys(v, EXPECT_KEYS, path)
  const e: Expectation = {}
  if (v.result !== undefined) e.result = v.result
  if (v.state !== undefined) {
    if (!isRecord(v.state)) fail(`${path}.state`, 'must be a mapping of state paths to expected values')
    e.state = v.state
  }
  if (v.diagnostics !== undefined) e.diagnostics = idList(v.diagnostics, `${path}.diagnostics`)
  if (v.notDiagnostics !== undefined) e.notDiagnostics = idList(v.notDiagnostics, `${path}.notDiagnostics`)
  if (v.noDiagnostics !== undefined) {
    if (typeof v.noDiagnostics !== 'boolean') fail(`${path}.noDiagnostics`, 'must be true or false')
    e.noDiagnostics = v.noDiagnostics
  }
  if (v.error !== undefined) {
    if (typeof v.error !== 'string') fail(`${path}.error`, 'must be an error code such as not_running')
    e.error = v.error
  }
  return e
}

function parseStep(v: unknown, path: string): Step {
  if (!isRecord(v)) fail(path, 'must be a mapping: an op with its fields, and optionally expect')
  const op: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) if (!STEP_META.includes(k)) op[k] = x
  const hasOp = Object.keys(op).length > 0
  if (hasOp && typeof op.op !== 'string') fail(`${path}.op`, 'must name the op (contract section 4), e.g. kmap_local_page')
  if (!hasOp && v.expect === undefined) fail(path, 'needs an op, or an expect block for a check-only step')
  if (v.perCpu !== undefined && typeof v.perCpu !== 'boolean') fail(`${path}.perCpu`, 'must be true or false')
  if (v.note !== undefined && typeof v.note !== 'string') fail(`${path}.note`, 'must be a string')
  return {
    op: hasOp ? op : null,
    expect: v.expect === undefined ? null : parseExpect(v.expect, `${path}.expect`),
    perCpu: v.perCpu === true,
    note: typeof v.note === 'string' ? v.note : null,
  }
}

function parseTasks(v: unknown): [string, TaskDecl][] {
  if (v === undefined) return []
  if (!isRecord(v)) fail('tasks', 'must be a mapping of task names to { cpu, cpus }')
  return Object.entries(v).map(([name, decl]) => {
    const path = `tasks.${name}`
    if (/^\d+$/.test(name)) fail(path, 'a task name cannot be a number (it would read as a pid)')
    if (decl === null) return [name, {}]
    if (!isRecord(decl)) fail(path, 'must be a mapping with optional cpu and cpus')
    onlyKeys(decl, TASK_KEYS, path)
    return [name, decl as TaskDecl]
  })
}

/** Validates a parsed document (from YAML or JSON) as a scenario. */
export function toScenario(doc: unknown): Scenario {
  if (!isRecord(doc)) fail('', 'a scenario is a mapping with name, machine and steps')
  onlyKeys(doc, TOP_KEYS, '')
  if (typeof doc.name !== 'string' || doc.name === '') fail('name', 'required: a non-empty string')
  if (doc.description !== undefined && typeof doc.description !== 'string') fail('description', 'must be a string')
  if (!isRecord(doc.machine)) fail('machine', 'required: a machine config (contract section 2)')
  if (!Array.isArray(doc.steps) || doc.steps.length === 0) fail('steps', 'required: a non-empty list of steps')
  return {
    name: doc.name,
    description: typeof doc.description === 'string' ? doc.description : null,
    machine: doc.machine,
    tasks: parseTasks(doc.tasks),
    steps: doc.steps.map((s, i) => parseStep(s, `steps[${i + 1}]`)),
  }
}

/** Parses scenario text: YAML (JSON is YAML too). `source` names the file in errors. */
export function parseScenario(text: string, source?: string): Scenario {
  try {
    return toScenario(parse(text))
  } catch (e) {
    if (e instanceof ScenarioFormatError) throw new ScenarioFormatError(e.path, e.rule, source)
    if (e instanceof Error) throw new ScenarioFormatError('', `not valid YAML/JSON: ${e.message}`, source)
    throw e
  }
}

export async function readScenario(file: string): Promise<Scenario> {
  return parseScenario(await readFile(file, 'utf8'), file)
}
