/**
 * Snapshot and restore of a Machine, so that a server can restore a long machine from a
 * periodic snapshot plus the ops after it instead of replaying its whole op log.
 *
 * The snapshot is JSON: `{"format": 1, "machine": <node>}`, where the node is the Machine
 * object graph (its effective config, the Kernel with its layout, tasks, CPUs, PTEs, pool,
 * diagnostics, ...) in a generic encoding, so that a field added to any of these classes
 * later is covered without touching this file:
 *
 * - numbers (finite, not -0), strings, booleans and null are themselves;
 * - a dense array is a JSON array, a plain object without a `$` key a JSON object;
 * - everything else is a tagged object `{"$": tag, ...}`:
 *     `{"$": "ref", "id": n}`          the object that carried `"id": n` earlier in the text;
 *     `{"$": "Task", "f": {...}}`      an instance of a registered class, fields in order;
 *     `{"$": "Object", "f": {...}}`    a plain object (shared, or with a `$` key);
 *     `{"$": "Array", "v": [...]}`     a shared array;
 *     `{"$": "Map", "v": [[k, v], ...]}`, `{"$": "Set", "v": [...]}`;
 *     `{"$": "Int32Array", "v": [...]}` (any integer or float typed array);
 *     `{"$": "number", "v": "Infinity" | "-Infinity" | "NaN" | "-0"}`, `{"$": "undefined"}`.
 *   An object reached more than once (cpu.curr is also in k.tasks, pool waiters, shared
 *   Pte objects) carries `"id"` where it is first written; later places hold a ref, so
 *   shared references and cycles survive a restore.
 *
 * Snapshots are taken between ops. What exists only during an op is not stored and is
 * reset on restore: Kernel.out (the events of the op, [] again), Kernel.watched (the
 * context whose counters an op traces, null again; every op starts by setting it) and
 * the caches Kernel.fixAddrCache and Kernel.pkmapAddrCache (formatted addresses, refilled on use).
 */
import { Cpu, Task } from './task.js'
import { Kernel } from './kernel.js'
import { Machine } from './machine.js'

/** The format this build writes and the only one it reads. */
export const SNAPSHOT_FORMAT = 1

/** A machine that cannot be snapshotted, or a text that is not a snapshot this build reads. */
export class SnapshotError extends Error {
  override name = 'SnapshotError'
}

interface ClassEntry {
  proto: object
  /** Per-op fields: not stored, and given a fresh value on restore. */
  transient: Record<string, () => unknown>
}

/** The classes a machine's graph holds, by the tag their instances carry. */
const CLASSES: Record<string, ClassEntry> = {
  Machine: { proto: Machine.prototype, transient: {} },
  Kernel: { proto: Kernel.prototype, transient: { out: () => [], watched: () => null, fixAddrCache: () => [], pkmapAddrCache: () => [] } },
  Task: { proto: Task.prototype, transient: {} },
  Cpu: { proto: Cpu.prototype, transient: {} },
}
const CLASS_OF = new Map(Object.entries(CLASSES).map(([tag, c]) => [c.proto, { tag, ...c }]))

const TYPED_ARRAYS = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
}
type TypedArrayName = keyof typeof TYPED_ARRAYS
type TypedArray = InstanceType<(typeof TYPED_ARRAYS)[TypedArrayName]>
const TYPED_ARRAY_NAME = new Map<object, TypedArrayName>(
  Object.entries(TYPED_ARRAYS).map(([name, ctor]) => [ctor.prototype, name as TypedArrayName]),
)

type Node = null | boolean | number | string | Node[] | { [key: string]: Node }

// ---------------------------------------------------------------- encoding

/** The numbers JSON has no form for, as a tagged number's `v`. */
const SPECIAL_NUMBERS = ['Infinity', '-Infinity', 'NaN', '-0'] as const

function encodeNumber(n: number): Node {
  if (Number.isFinite(n) && !Object.is(n, -0)) return n
  return { $: 'number', v: Object.is(n, -0) ? '-0' : String(n) }
}

/**
 * One walk over the graph. The walk runs twice: the first finds the objects reached more
 * than once, the second writes the text with ids on exactly those.
 */
class Encoder {
  /** Every object met so far, with its id if it is shared (second walk). */
  private readonly seen = new Map<object, number | null>()
  /** Objects met a second time: what the next walk must give ids. */
  readonly revisited = new Set<object>()
  private nextId = 0
  /** Keys from the root to the value being encoded, for errors. */
  private readonly path: (string | number)[] = []

  constructor(private readonly shared: ReadonlySet<object>) {}

  private fail(what: string): never {
    throw new SnapshotError(`cannot snapshot machine.${this.path.join('.')}: ${what}`)
  }

  private child(key: string | number, v: unknown): Node {
    this.path.push(key)
    const node = this.encode(v)
    this.path.pop()
    return node
  }

  encode(v: unknown): Node {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v
      case 'number':
        return encodeNumber(v)
      case 'undefined':
        return { $: 'undefined' }
      case 'object':
        return v === null ? null : this.object(v)
      default:
        return this.fail(`a ${typeof v} cannot be stored`)
    }
  }

  private object(o: object): Node {
    const met = this.seen.get(o)
    if (met !== undefined) {
      this.revisited.add(o)
      // Only the second walk's text is kept; in the first no object has an id yet.
      return { $: 'ref', id: met ?? -1 }
    }
    const id = this.shared.has(o) ? this.nextId++ : null
    this.seen.set(o, id)
    const node = this.body(o, id !== null)
    if (id !== null) (node as Record<string, Node>).id = id
    return node
  }

  /** The node of an object met for the first time; `tagged` when it must carry an id. */
  private body(o: object, tagged: boolean): Node {
    if (Array.isArray(o)) {
      const v: Node[] = []
      for (let i = 0; i < o.length; i++) {
        if (!(i in o)) this.fail(`array with a hole at ${i}`)
        v.push(this.child(i, o[i]))
      }
      return tagged ? { $: 'Array', v } : v
    }
    if (o instanceof Map) return { $: 'Map', v: [...o].map(([key, val], i): Node => [this.child(i, key), this.child(i, val)]) }
    if (o instanceof Set) return { $: 'Set', v: [...o].map((val, i) => this.child(i, val)) }
    const proto = Object.getPrototypeOf(o) as object | null
    const typed = proto === null ? undefined : TYPED_ARRAY_NAME.get(proto)
    if (typed !== undefined) return { $: typed, v: Array.from(o as TypedArray, encodeNumber) }
    if (proto === Object.prototype) {
      const f = this.fields(o, {})
      return tagged || '$' in f ? { $: 'Object', f } : f
    }
    const cls = proto === null ? undefined : CLASS_OF.get(proto)
    if (cls === undefined) {
      const name = (proto?.constructor as { name?: string } | undefined)?.name ?? 'null-prototype object'
      return this.fail(`${name} is not a class the snapshot knows (register it in src/sim/snapshot.ts)`)
    }
    for (const key of Object.keys(cls.transient))
      if (!(key in o)) this.fail(`${cls.tag} has no field ${key}, which the snapshot resets (update src/sim/snapshot.ts)`)
    return { $: cls.tag, f: this.fields(o, cls.transient) }
  }

  private fields(o: object, skip: Record<string, unknown>): Record<string, Node> {
    const f: Record<string, Node> = {}
    for (const [key, val] of Object.entries(o)) if (!(key in skip)) f[key] = this.child(key, val)
    return f
  }
}

/**
 * The machine as a JSON text; take it between apply() calls. Throws SnapshotError, naming
 * the field, if the state holds something that cannot be stored (a function, an instance
 * of a class not registered here).
 */
export function snapshotMachine(m: Machine): string {
  const discovery = new Encoder(new Set())
  discovery.encode(m)
  const machine = new Encoder(discovery.revisited).encode(m)
  return JSON.stringify({ format: SNAPSHOT_FORMAT, machine })
}

// ---------------------------------------------------------------- decoding

function isObjectNode(n: unknown): n is Record<string, unknown> {
  return typeof n === 'object' && n !== null && !Array.isArray(n)
}

class Decoder {
  private readonly byId = new Map<number, unknown>()

  private bad(what: string): never {
    throw new SnapshotError(`malformed snapshot: ${what}`)
  }

  /** Registers an object before its contents, so that refs inside it (cycles) resolve. */
  private made<T>(node: Record<string, unknown>, o: T): T {
    if (node.id !== undefined) {
      if (typeof node.id !== 'number' || this.byId.has(node.id)) this.bad(`bad or repeated id ${JSON.stringify(node.id)}`)
      this.byId.set(node.id, o)
    }
    return o
  }

  private list(node: Record<string, unknown>): unknown[] {
    if (!Array.isArray(node.v)) this.bad(`${String(node.$)} without a "v" array`)
    return node.v
  }

  private fill(target: object, f: unknown): void {
    if (!isObjectNode(f)) this.bad('an object without an "f" object')
    for (const [key, val] of Object.entries(f)) {
      if (key === '__proto__') this.bad('a field named __proto__')
      ;(target as Record<string, unknown>)[key] = this.decode(val)
    }
  }

  private number(v: unknown): number {
    if (typeof v === 'number') return v
    if (isObjectNode(v) && v.$ === 'number' && (SPECIAL_NUMBERS as readonly unknown[]).includes(v.v)) return Number(v.v)
    return this.bad(`${JSON.stringify(v)} is not a number`)
  }

  decode(node: unknown): unknown {
    if (node === null || typeof node !== 'object') return node
    if (Array.isArray(node)) return node.map((e) => this.decode(e))
    const n = node as Record<string, unknown>
    if (!('$' in n)) {
      const o = {}
      this.fill(o, n)
      return o
    }
    const tag = n.$
    switch (tag) {
      case 'ref':
        if (!this.byId.has(n.id as number)) this.bad(`ref to unknown id ${JSON.stringify(n.id)}`)
        return this.byId.get(n.id as number)
      case 'undefined':
        return undefined
      case 'number':
        return this.number(n)
      case 'Array': {
        const a = this.made(n, [] as unknown[])
        for (const e of this.list(n)) a.push(this.decode(e))
        return a
      }
      case 'Object': {
        const o = this.made(n, {})
        this.fill(o, n.f)
        return o
      }
      case 'Map': {
        const m = this.made(n, new Map())
        for (const e of this.list(n)) {
          if (!Array.isArray(e) || e.length !== 2) this.bad('a Map entry that is not a [key, value] pair')
          m.set(this.decode(e[0]), this.decode(e[1]))
        }
        return m
      }
      case 'Set': {
        const s = this.made(n, new Set())
        for (const e of this.list(n)) s.add(this.decode(e))
        return s
      }
    }
    if (typeof tag === 'string' && Object.hasOwn(TYPED_ARRAYS, tag))
      return this.made(n, new TYPED_ARRAYS[tag as TypedArrayName](this.list(n).map((e) => this.number(e))))
    const cls = typeof tag === 'string' && Object.hasOwn(CLASSES, tag) ? CLASSES[tag]! : this.bad(`unknown tag ${JSON.stringify(tag)}`)
    const o = this.made(n, Object.create(cls.proto) as Record<string, unknown>)
    this.fill(o, n.f)
    for (const [key, fresh] of Object.entries(cls.transient)) o[key] = fresh()
    return o
  }
}

/**
 * A machine from a snapshotMachine() text: it behaves from then on exactly as the machine
 * the snapshot was taken of. Throws SnapshotError for malformed JSON, a format this build
 * does not read, or a text that does not decode to a machine.
 */
export function restoreMachine(snapshot: string): Machine {
  let doc: unknown
  try {
    doc = JSON.parse(snapshot)
  } catch (e) {
    throw new SnapshotError(`malformed snapshot: not JSON (${(e as Error).message})`)
  }
  if (!isObjectNode(doc) || !('format' in doc)) throw new SnapshotError('malformed snapshot: no "format" field')
  if (doc.format !== SNAPSHOT_FORMAT)
    throw new SnapshotError(`unsupported snapshot format ${JSON.stringify(doc.format)}: this build reads format ${SNAPSHOT_FORMAT}`)
  const m = new Decoder().decode(doc.machine)
  if (!(m instanceof Machine)) throw new SnapshotError('malformed snapshot: "machine" is not a Machine')
  return m
}
