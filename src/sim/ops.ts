/**
 * The op vocabulary (contract section 4) and its validation. A malformed op is refused here,
 * before the machine is touched, with an InvalidOpError naming the field and the rule.
 */
import { parseAddr, parsePhys, type VAddr } from './addr.js'
import type { Layout } from './config.js'
import { InvalidOpError } from './errors.js'
import { PROTS, type Prot } from './task.js'

type FieldType = 'page' | 'addr' | 'prot' | 'bool' | 'count' | 'name' | 'cpus' | 'cpu' | 'pid' | 'kind' | 'phys'
interface FieldSpec {
  type: FieldType
  optional?: boolean
}
/**
 * task: runs as a task (`pid`) or, while its CPU is in an interrupt, in that interrupt (`cpu`);
 * process: needs a real task (`pid` only); machine: no calling context.
 */
export type Where = 'task' | 'process' | 'machine'
interface OpSpec {
  where: Where
  fields: Record<string, FieldSpec>
}

const req = (type: FieldType): FieldSpec => ({ type })
const opt = (type: FieldType): FieldSpec => ({ type, optional: true })
const none = { where: 'task', fields: {} } as const satisfies OpSpec

export const OP_SPECS = {
  kmap_local_page: { where: 'task', fields: { page: req('page') } },
  kmap_atomic: { where: 'task', fields: { page: req('page') } },
  kmap_local_page_prot: { where: 'task', fields: { page: req('page'), prot: req('prot') } },
  kmap_atomic_prot: { where: 'task', fields: { page: req('page'), prot: req('prot') } },
  kmap_local_pfn: { where: 'task', fields: { pfn: req('page') } },
  kmap_atomic_pfn: { where: 'task', fields: { pfn: req('page') } },
  kunmap_local: { where: 'task', fields: { addr: req('addr') } },
  kunmap_atomic: { where: 'task', fields: { addr: req('addr') } },
  kmap: { where: 'task', fields: { page: req('page') } },
  kunmap: { where: 'task', fields: { page: req('page') } },
  kmap_flush_unused: none,
  kmap_to_page: { where: 'task', fields: { addr: req('addr') } },
  io_mapping_map_local_wc: { where: 'task', fields: { mapping: req('count'), offset: req('phys') } },
  io_mapping_map_atomic_wc: { where: 'task', fields: { mapping: req('count'), offset: req('phys') } },
  io_mapping_unmap_local: { where: 'task', fields: { addr: req('addr') } },
  io_mapping_unmap_atomic: { where: 'task', fields: { addr: req('addr') } },
  preempt_disable: none,
  preempt_enable: none,
  migrate_disable: none,
  migrate_enable: none,
  pagefault_disable: none,
  pagefault_enable: none,
  local_irq_disable: none,
  local_irq_enable: none,
  might_sleep: none,
  access: { where: 'task', fields: { addr: req('addr'), write: opt('bool') } },
  copy_to_user: { where: 'task', fields: { bytes: req('count'), userPresent: req('bool') } },
  schedule: none,
  sleep: none,
  return_to_user: { where: 'process', fields: {} },
  fork: { where: 'process', fields: { name: req('name') } },
  exit: { where: 'process', fields: {} },
  sched_setaffinity: { where: 'process', fields: { target: req('pid'), cpus: req('cpus') } },
  spawn: { where: 'machine', fields: { name: req('name'), cpu: opt('cpu'), cpus: opt('cpus') } },
  io_mapping_create: { where: 'machine', fields: { base: req('phys'), size: req('phys') } },
  preempt: { where: 'machine', fields: { cpu: req('cpu') } },
  switch_to: { where: 'machine', fields: { cpu: req('cpu'), pid: req('pid') } },
  set_task_cpu: { where: 'machine', fields: { pid: req('pid'), cpu: req('cpu') } },
  wake: { where: 'machine', fields: { pid: req('pid') } },
  irq_enter: { where: 'machine', fields: { cpu: req('cpu'), kind: opt('kind'), irqsDisabled: opt('bool') } },
  irq_exit: { where: 'machine', fields: { cpu: req('cpu') } },
} as const satisfies Record<string, OpSpec>

export type OpName = keyof typeof OP_SPECS
export const OP_NAMES = Object.keys(OP_SPECS) as OpName[]

/**
 * A validated op. It has every field any op may have, so every op's ParsedOp has the same
 * shape and parsing only fills fields in. Of a task or process op, `pid` or `cpu` names the calling
 * context (a task, or the interrupt open on that CPU); of a machine op they are its fields.
 */
export class ParsedOp {
  page?: number
  pfn?: number
  addr?: VAddr
  prot?: Prot
  write?: boolean
  bytes?: number
  userPresent?: boolean
  mapping?: number
  offset?: number
  name?: string
  target?: number
  cpus?: number[]
  cpu?: number
  pid?: number
  kind?: 'hardirq' | 'softirq'
  irqsDisabled?: boolean
  base?: number
  size?: number
}
type FieldName = keyof ParsedOp
interface Field {
  key: FieldName
  type: FieldType
  optional: boolean
}

function bad(field: string, rule: string): never {
  throw new InvalidOpError(field, rule)
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v)
}

type FieldParser = (l: Layout, field: string, v: unknown) => unknown

/** One parser per field type: checks a present value and returns what the model keeps. */
const FIELD_PARSERS: Record<FieldType, FieldParser> = {
  page: (l, field, v) => {
    const pfn = parsePhys(v, field, InvalidOpError)
    if (pfn >= l.maxPfn) bad(field, `must be a pfn below ${'0x' + l.maxPfn.toString(16)} (physical address width)`)
    if (l.arch === 'x86_32' && !l.highmem && pfn >= l.highmemStartPfn)
      bad(field, `must be a lowmem pfn below ${'0x' + l.highmemStartPfn.toString(16)}: a kernel without HIGHMEM cannot use memory above`)
    return pfn
  },
  addr: (l, field, v) => parseAddr(v, l.addrBits, field, InvalidOpError),
  prot: (_l, field, v) => {
    if (typeof v !== 'string' || !(PROTS as readonly string[]).includes(v)) bad(field, `must be one of ${PROTS.join(', ')}`)
    return v
  },
  bool: (_l, field, v) => {
    if (typeof v !== 'boolean') bad(field, 'must be a boolean')
    return v
  },
  count: (_l, field, v) => {
    if (!isInt(v) || v < 0 || v > 2 ** 31) bad(field, 'must be an integer from 0 to 2^31')
    return v
  },
  phys: (_l, field, v) => parsePhys(v, field, InvalidOpError),
  name: (_l, field, v) => {
    // TASK_COMM_LEN is 16 with the terminating NUL.
    if (typeof v !== 'string' || !/^[\x21-\x7e][\x20-\x7e]{0,14}$/.test(v))
      bad(field, 'must be 1 to 15 printable ASCII characters (TASK_COMM_LEN)')
    return v
  },
  cpu: parseCpu,
  pid: parsePid,
  cpus: (l, field, v) => {
    if (!Array.isArray(v) || v.length === 0) bad(field, 'must be a non-empty array of CPU numbers')
    for (const c of v) if (!isInt(c) || c < 0 || c >= l.nrCpus) bad(field, `CPU numbers must be from 0 to ${l.nrCpus - 1}`)
    return [...new Set(v as number[])].sort((a, b) => a - b)
  },
  kind: (_l, field, v) => {
    if (v !== 'hardirq' && v !== 'softirq') bad(field, 'must be "hardirq" or "softirq"')
    return v
  },
}

function parseCpu(l: Layout, field: string, v: unknown): number {
  if (!isInt(v) || v < 0 || v >= l.nrCpus) bad(field, `must be a CPU number from 0 to ${l.nrCpus - 1}`)
  return v
}

function parsePid(_l: Layout, field: string, v: unknown): number {
  if (!isInt(v) || v < 0) bad(field, 'must be a pid (a non-negative integer)')
  return v
}

/**
 * Reads an op's fields from `raw` into `p`, its own in the order OP_SPECS lists them and
 * then its calling context, and returns how many were present. Every field of the op is
 * written, an absent one as undefined, so a ParsedOp the op used before holds nothing of
 * its earlier value.
 */
type FieldReader = (l: Layout, raw: Record<string, unknown>, p: ParsedOp) => number

/**
 * The calling context of a task or process op, named by exactly one of `pid` or `cpu`;
 * returns the one key it took.
 */
function readContext(l: Layout, name: OpName, where: Where, pid: unknown, cpu: unknown, p: ParsedOp): number {
  const hasPid = pid !== undefined
  if (hasPid === (cpu !== undefined)) {
    bad(hasPid ? 'cpu' : 'pid', where === 'process'
      ? `${name} runs in task context: name the task with "pid"`
      : `${name} needs exactly one of "pid" (task context) or "cpu" (the interrupt open on that CPU)`)
  }
  if (!hasPid && where === 'process') bad('cpu', `${name} cannot run in interrupt context: name the task with "pid"`)
  p.pid = hasPid ? parsePid(l, 'pid', pid) : undefined
  p.cpu = hasPid ? undefined : parseCpu(l, 'cpu', cpu)
  return 1
}

/**
 * Compiles an op's field list into a FieldReader that names each field in its code. A loop
 * over the list reads raw[key] and writes p[key] with a key that changes from field to
 * field and op to op: keyed accesses V8 cannot specialise, which made parsing cost more
 * than the map or unmap it parses. Spelled out, each read and write is a plain property
 * access, as in a hand-written parser; `raw.pid` and `raw.cpu` are read here too, where
 * they see only this op's shapes of object rather than every op's. Keys and types come
 * from OP_SPECS alone.
 */
function compileReader(name: OpName, where: Where, fields: Field[]): FieldReader {
  const lines = fields.map(({ key, type, optional }) => {
    if (!/^[a-zA-Z]+$/.test(key)) throw new Error(`field name ${key} is not an identifier`)
    const read = `v = raw.${key}\nif (v !== undefined) { p.${key} = parsers.${type}(l, '${key}', v); seen++ }`
    return optional ? `${read} else p.${key} = undefined` : `${read} else bad('${key}', 'required by ${name}')`
  })
  if (where !== 'machine') lines.push(`seen += readContext(l, '${name}', '${where}', raw.pid, raw.cpu, p)`)
  const body = `return function read_${name}(l, raw, p) {\nlet v, seen = 0\n${lines.join('\n')}\nreturn seen\n}`
  return new Function('parsers', 'bad', 'readContext', body)(FIELD_PARSERS, bad, readContext) as FieldReader
}

/** What parsing needs to know of an op, computed once rather than per call: its reader and every key it accepts. */
export interface Syntax {
  name: OpName
  where: Where
  read: FieldReader
  allowed: Set<string>
  /**
   * The op's ParsedOp, refilled by every parse of it: an op is applied synchronously and
   * nothing keeps its ParsedOp past apply(), so one per op saves an 18-field allocation per
   * call (a sixth of the bytes a map or unmap allocates).
   */
  parsed: ParsedOp
}

export const SYNTAX = Object.fromEntries(
  Object.entries(OP_SPECS).map(([name, spec]: [string, OpSpec]) => {
    const fields = Object.entries(spec.fields).map(([key, f]) => ({ key: key as FieldName, type: f.type, optional: f.optional === true }))
    const allowed = new Set(['op', ...fields.map((f) => f.key), ...(spec.where === 'machine' ? [] : ['pid', 'cpu'])])
    const syntax: Syntax = { name: name as OpName, where: spec.where, read: compileReader(name as OpName, spec.where, fields), allowed, parsed: new ParsedOp() }
    return [name, syntax]
  }),
) as Record<OpName, Syntax>

/** The entry of `table` an op names; an op that is not an object with a known name is refused. */
export function lookupOp<E>(table: ReadonlyMap<string, E>, input: unknown): E {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) bad('op', 'an op must be an object with an "op" field')
  const name = (input as Record<string, unknown>).op
  const entry = typeof name === 'string' ? table.get(name) : undefined
  if (entry === undefined) bad('op', `unknown op; one of ${OP_NAMES.join(', ')}`)
  return entry
}

/** Validates an op's fields against its syntax and the machine's layout. */
export function parseOp(l: Layout, syntax: Syntax, raw: Record<string, unknown>): ParsedOp {
  const name = syntax.name
  const p = syntax.parsed
  const seen = 1 + syntax.read(l, raw, p) // "op" and the op's fields
  // Look for an unknown key only when the count says there is one.
  let keys = 0
  for (const _ in raw) keys++
  if (keys !== seen) for (const key in raw) if (!syntax.allowed.has(key) || raw[key] === undefined) bad(key, `unknown field for ${name}`)
  return p
}
