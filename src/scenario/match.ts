/**
 * Deep partial matching of an expectation against a result or a state document, returning
 * the first place they differ. The rules (docs/scenarios.md):
 * - a mapping checks only the keys it names; a key with dots is a path (`tasks.T.kmapIdx`);
 * - a list must match element by element and have the same length;
 * - a mapping against a list picks elements by their identity field (pid, fixIdx, nr,
 *   mapping, slot or cpu, the first the elements have), or by index if they have none;
 *   a task name picks the task; `null` asserts that no such element exists;
 * - a task name where the document holds a number stands for that task's pid;
 * - a number where the document holds a hex address string compares by value.
 */

export interface Difference {
  /** Where, in the expectation's own words: `state.tasks.T.kmapIdx`. */
  path: string
  expected: unknown
  /** undefined when the document has nothing there. */
  got: unknown
}

/** Identity fields of the state's lists, in the order they are tried. */
const IDENTITY = ['pid', 'fixIdx', 'nr', 'mapping', 'slot', 'cpu']
const HEX = /^0x[0-9a-f]+$/i

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** `{ 'a.b': 1, a: { c: 2 } }` -> `{ a: { b: 1, c: 2 } }`. */
function expandPaths(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(obj)) {
    const parts = key.split('.')
    let node = out
    for (const p of parts.slice(0, -1)) {
      if (!isRecord(node[p])) node[p] = {}
      node = node[p] as Record<string, unknown>
    }
    const last = parts[parts.length - 1]!
    node[last] = isRecord(value) && isRecord(node[last]) ? { ...(node[last] as Record<string, unknown>), ...value } : value
  }
  return out
}

function samePrimitive(expected: unknown, got: unknown, names: ReadonlyMap<string, number>): boolean {
  if (typeof expected === 'string' && typeof got === 'number' && names.has(expected)) return names.get(expected) === got
  if (typeof expected === 'number' && typeof got === 'string' && HEX.test(got) && Number.isSafeInteger(expected))
    return BigInt(expected) === BigInt(got)
  if (typeof expected === 'string' && typeof got === 'string' && HEX.test(expected) && HEX.test(got)) return BigInt(expected) === BigInt(got)
  return expected === got
}

/** The element of `list` that `key` names: by identity field, or by index in an unkeyed list. */
function pick(list: unknown[], key: string, names: ReadonlyMap<string, number>): unknown {
  const first = list.find(isRecord)
  const id = first === undefined ? undefined : IDENTITY.find((f) => f in first)
  if (id === undefined) return /^\d+$/.test(key) ? list[Number(key)] : undefined
  const want = names.get(key) ?? (/^\d+$/.test(key) ? Number(key) : HEX.test(key) ? Number(BigInt(key)) : key)
  return list.find((el) => isRecord(el) && el[id] === want)
}

/** The first difference between `expected` and `got`, or null when `got` satisfies it. */
export function firstDifference(expected: unknown, got: unknown, path: string, names: ReadonlyMap<string, number>): Difference | null {
  const here = (): Difference => ({ path, expected, got })
  if (isRecord(expected)) {
    const wanted = expandPaths(expected)
    if (Array.isArray(got)) {
      for (const [key, sub] of Object.entries(wanted)) {
        const el = pick(got, key, names)
        if (sub === null) {
          if (el !== undefined) return { path: `${path}.${key}`, expected: null, got: el }
          continue
        }
        if (el === undefined) return { path: `${path}.${key}`, expected: sub, got: undefined }
        const d = firstDifference(sub, el, `${path}.${key}`, names)
        if (d !== null) return d
      }
      return null
    }
    if (!isRecord(got)) return here()
    for (const [key, sub] of Object.entries(wanted)) {
      const d = firstDifference(sub, got[key], `${path}.${key}`, names)
      if (d !== null) return d
    }
    return null
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(got) || got.length !== expected.length) return here()
    for (let i = 0; i < expected.length; i++) {
      const d = firstDifference(expected[i], got[i], `${path}[${i}]`, names)
      if (d !== null) return d
    }
    return null
  }
  // null expects null or nothing at all.
  if (expected === null) return got === null || got === undefined ? null : here()
  return samePrimitive(expected, got, names) ? null : here()
}
