/**
 * One event on one line, for `tail` and `op`: seq, simulated time, CPU and context first
 * (where a trace-cmd reader looks), then the type and its fields as key=value.
 * `[002] 0.000012345  #17  T1  kmap  api=kmap_local_page addr=0xfff9b000 pfn=0x40000 slot=0`
 */
import type { SimEvent } from '../sim/index.js'

const FIXED = new Set(['seq', 'ts', 'type', 'cpu', 'pid'])
/** Page frame numbers read best in hex, as the kernel prints them. */
const HEX = new Set(['pfn', 'page'])

function value(key: string, v: unknown): string {
  if (typeof v === 'number' && HEX.has(key)) return '0x' + v.toString(16)
  if (typeof v === 'string') return /^[\x21-\x7e]+$/.test(v) && !v.includes('"') ? v : JSON.stringify(v)
  return JSON.stringify(v)
}

/** Seconds of simulated time with nanosecond digits, like ftrace's timestamp column. */
function seconds(ns: number): string {
  return `${Math.floor(ns / 1e9)}.${String(ns % 1e9).padStart(9, '0')}`
}

export function eventLine(e: SimEvent): string {
  const cpu = e.cpu === null || e.cpu === undefined ? '[---]' : `[${String(e.cpu).padStart(3, '0')}]`
  // No pid: interrupt or machine context (the event's own fields say which task, if any).
  const who = e.pid === null || e.pid === undefined ? '-' : `T${e.pid}`
  const fields = Object.entries(e)
    .filter(([k, v]) => !FIXED.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(k, v)}`)
  return [cpu, seconds(e.ts), `#${e.seq}`.padStart(7), who.padEnd(7), e.type.padEnd(14), ...fields].join(' ').trimEnd()
}
