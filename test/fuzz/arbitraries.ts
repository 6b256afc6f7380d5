// fast-check arbitraries for hostile input, shared by the REST and WebSocket fuzzers: values
// of the wrong type, huge, negative and fractional numbers, invalid hex, long strings, deep
// nesting, unknown fields, and valid-looking ops with one field made hostile (the inputs most
// likely to get past validation into the model).
import fc from 'fast-check'
import { loadSpec } from '../../src/api/spec.js'

/** How many inputs each property tries; KMAPLAB_FUZZ_RUNS scales a deeper run. */
export const RUNS = Number(process.env.KMAPLAB_FUZZ_RUNS ?? 100)

const deep = (depth: number, leaf: unknown, asArray: boolean): unknown => {
  let v = leaf
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { a: v }
  return v
}

export const hostileNumber = fc.oneof(
  fc.constantFrom(-1, -0, 0.5, -(2 ** 31), 2 ** 31, 2 ** 53, -(2 ** 53), 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 4096, 4097, 64, 65),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)

export const hostileString = fc.oneof(
  fc.constantFrom('', ' ', '0x', '0xZZ', '0x-1', ' 0x1', '0x1 ', '0x' + 'f'.repeat(17), '0X' + '0'.repeat(64), '1e3', 'NaN', '-0x10', '0x40000\u0000', '__proto__', 'constructor', '<script>', '../../etc/passwd', 'PAGE_KERNEL', 'PAGE_' + 'A'.repeat(40)),
  fc.string({ maxLength: 40 }),
  fc.nat({ max: 200_000 }).map((n) => 'x'.repeat(n)),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
)

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileNumber,
  hostileString,
  fc.constantFrom(null, true, false, [], {}, [1, 2], { op: 'spawn' }),
  fc.tuple(fc.nat({ max: 3000 }), fc.boolean()).map(([d, a]) => deep(d, 1, a)),
  fc.json({ depthSize: 'small' }).map((s) => JSON.parse(s) as unknown),
)

// Every field of openapi.yaml's Op schema, plus a few the schema does not have.
const OP_FIELDS = ['op', 'pid', 'cpu', 'page', 'pfn', 'prot', 'addr', 'mapping', 'offset', 'write', 'bytes', 'userPresent', 'name', 'target', 'cpus', 'base', 'size', 'kind', 'irqsDisabled']
const opSchema = (loadSpec().document as any).components.schemas.Op
export const OP_NAMES: string[] = opSchema.properties.op.enum

/** A plausible value for a field of an op (so that some hostile ops are valid and run). */
const plausible: Record<string, fc.Arbitrary<unknown>> = {
  op: fc.constantFrom(...OP_NAMES),
  pid: fc.nat({ max: 4 }),
  cpu: fc.nat({ max: 2 }),
  target: fc.nat({ max: 4 }),
  page: fc.constantFrom(0x40000, '0x40000', 0x100, '0x38001'),
  pfn: fc.constantFrom(0x40000, '0x40001'),
  addr: fc.constantFrom('0xfffbb000', '0xfffab000', '0xc0100000', '0xff800000'),
  prot: fc.constantFrom('PAGE_KERNEL', 'PAGE_KERNEL_RO'),
  name: fc.constantFrom('A', 'B', 'kworker/0:1'),
  cpus: fc.constantFrom([0], [1], [0, 1]),
  kind: fc.constantFrom('hardirq', 'softirq'),
}

// Ops that a machine with tasks 1 (CPU 0) and 2 (CPU 1) may well take, so that spoiling one
// field leaves an input that reaches the model rather than stopping at the schema.
const CANONICAL: Record<string, unknown>[] = [
  { op: 'kmap_local_page', pid: 1, page: 0x40000 }, { op: 'kmap_atomic', pid: 2, page: '0x40001' },
  { op: 'kmap_local_pfn', pid: 1, pfn: 0x12345 }, { op: 'kmap_atomic_pfn', pid: 1, pfn: 0x40000 },
  { op: 'kmap_local_page_prot', pid: 1, page: 0x40000, prot: 'PAGE_KERNEL_RO' },
  { op: 'kunmap_local', pid: 1, addr: '0xfffbb000' }, { op: 'kunmap_atomic', pid: 2, addr: '0xfffab000' },
  { op: 'kmap', pid: 1, page: 0x40002 }, { op: 'kunmap', pid: 1, page: 0x40002 }, { op: 'kmap_flush_unused' },
  { op: 'access', pid: 1, addr: '0xfffbb000' }, { op: 'copy_to_user', pid: 1, addr: '0xfffbb000', bytes: 64 },
  { op: 'preempt_disable', pid: 1 }, { op: 'preempt_enable', pid: 1 }, { op: 'migrate_disable', pid: 2 }, { op: 'migrate_enable', pid: 2 },
  { op: 'pagefault_disable', pid: 1 }, { op: 'local_irq_disable', pid: 1 }, { op: 'local_irq_enable', pid: 1 }, { op: 'might_sleep', pid: 1 },
  { op: 'schedule', pid: 1 }, { op: 'sleep', pid: 2 }, { op: 'wake', pid: 2 }, { op: 'fork', pid: 1, name: 'C' }, { op: 'exit', pid: 2 },
  { op: 'sched_setaffinity', pid: 1, cpus: [1] }, { op: 'spawn', name: 'D', cpu: 1 }, { op: 'preempt', cpu: 0 },
  { op: 'irq_enter', cpu: 0, kind: 'hardirq' }, { op: 'irq_exit', cpu: 0 }, { op: 'set_task_cpu', pid: 2, cpu: 0 },
  { op: 'io_mapping_create', base: '0xe0000000', size: '0x100000' }, { op: 'return_to_user', pid: 1 },
]

/** An op of the right shape, which the model takes or refuses by the machine's state (409). */
export const plausibleOp: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.constantFrom(...CANONICAL),
  fc.record(Object.fromEntries(Object.entries(plausible)), { requiredKeys: ['op'] }),
)

/** An op built from plausible fields, then with some made hostile and maybe an unknown one added. */
export const hostileOp: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    base: plausibleOp,
    // Left clean half the time: an input spoiled everywhere never gets past the schema.
    spoiled: fc.oneof(fc.constant({}), fc.dictionary(fc.constantFrom(...OP_FIELDS), hostileValue, { minKeys: 1, maxKeys: 2 })),
    unknown: fc.option(fc.tuple(fc.constantFrom('extra', '__proto__', 'constructor', 'seq', 'ops'), hostileValue), { freq: 4 }),
  })
  .map(({ base, spoiled, unknown }) => {
    const op: Record<string, unknown> = { ...base, ...spoiled }
    if (unknown) Object.defineProperty(op, unknown[0], { value: unknown[1], enumerable: true })
    return op
  })

/** A JSON body: an object of hostile fields (named after `fields` or not), or any hostile value. */
export function hostileBody(fields: readonly string[], valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  const names = fields.length > 0 ? fc.oneof(fc.constantFrom(...fields), fc.string({ maxLength: 10 })) : fc.string({ maxLength: 10 })
  return fc.oneof(
    valid,
    fc.dictionary(names, hostileValue, { maxKeys: 4 }),
    fc.tuple(valid, fc.dictionary(names, hostileValue, { minKeys: 1, maxKeys: 2 })).map(([v, extra]) => (typeof v === 'object' && v !== null ? { ...v, ...extra } : extra)),
    hostileValue,
  )
}

/** The body of POST /ops (and of an op over the socket): one op, or a batch. */
export const hostileOpsBody = fc.oneof(
  plausibleOp,
  fc.array(plausibleOp, { minLength: 1, maxLength: 4 }).map((ops) => ({ ops })),
  hostileOp,
  fc.array(hostileOp, { minLength: 0, maxLength: 4 }).map((ops) => ({ ops })),
  hostileBody(['ops', 'op'], fc.constant({ ops: [] })),
)
