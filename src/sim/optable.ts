/**
 * Everything the machine needs to run an op, found with one lookup by its name: how to
 * read it (ops.ts), what state refuses it (refusals.ts) and what it does (handlers.ts).
 */
import { HANDLERS, type Handler } from './handlers.js'
import { OP_NAMES, SYNTAX, type Syntax } from './ops.js'
import { REFUSALS, type Refusal } from './refusals.js'

export interface OpEntry {
  syntax: Syntax
  refuse: Refusal | null
  run: Handler
}

export const OPS: ReadonlyMap<string, OpEntry> = new Map(
  OP_NAMES.map((name) => [name, { syntax: SYNTAX[name], refuse: REFUSALS[name] ?? null, run: HANDLERS[name] }]),
)
