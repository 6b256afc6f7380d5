/**
 * Chrome trace-event JSON (the "JSON trace format" that Perfetto and chrome://tracing open
 * as they are). One process per machine; tracks (tids) inside it:
 * - one per CPU (tid = CPU number): the task running there, one complete ("X") slice per
 *   stretch between two sched_switch events, plus instants for diagnostics and faults;
 * - one per task (tid = TASK_TID_BASE + pid): its local kmaps as B/E slices from kmap to
 *   the kunmap that pops the same slot. kunmap_local always pops the top slot, so these
 *   nest properly even after a wrong-order unmap (W4). Mappings without a slot (lowmem
 *   shortcut, pool kmap, x86_64 io-mapping) need not be undone in order, so they are async
 *   ("b"/"e") slices instead, which may overlap;
 * - counters ("C") for the live local slots of each CPU and for the pool's occupancy.
 * Timestamps are the simulated `ts` in microseconds, as the format wants.
 */
import type { SimEvent } from '../sim/index.js'
import type { EventSource } from './source.js'
import { TaskNames } from './task-names.js'

export interface PerfettoOptions {
  /** The trace-event pid of the machine's process (a machine number, not a kernel pid). */
  pid: number
  /** The process name shown in the viewer. */
  name?: string
}

/** Task tracks sit above every possible CPU track (NR_CPUS is at most 64). */
export const TASK_TID_BASE = 1000
/** Events of no CPU (io_mapping_create, machine-level diagnostics). */
export const MACHINE_TID = 999

type TraceEvent = Record<string, unknown>

interface Running {
  label: string
  pid: number | null
  start: number
}

const hexPfn = (pfn: unknown): string => (typeof pfn === 'number' ? '0x' + pfn.toString(16) : String(pfn))

/** The state an encoder needs between events: what runs where, what is mapped, the counters. */
class PerfettoTracks {
  private readonly names = new TaskNames()
  private readonly namedTracks = new Set<number>()
  private readonly running = new Map<number, Running>()
  /** Open slot mappings of each task, innermost last. */
  private readonly slotMaps = new Map<number, number[]>()
  /** Open slot-less mappings: "task|addr" or "task|pool|pfn" -> async ids, latest last. */
  private readonly asyncMaps = new Map<string, { id: number; name: string }[]>()
  private nextAsyncId = 1
  private readonly liveSlots = new Map<number, number>()
  private readonly poolCount = new Map<number, number>()
  private firstTs: number | null = null
  private lastTs = 0

  constructor(private readonly pid: number) {}

  private base(name: string, ph: string, ts: number, tid: number): TraceEvent {
    return { name, ph, ts: ts / 1000, pid: this.pid, tid }
  }

  /** thread_name / thread_sort_index metadata, the first time a track is used. */
  private track(out: TraceEvent[], tid: number, name: () => string): number {
    if (this.namedTracks.has(tid)) return tid
    this.namedTracks.add(tid)
    out.push({ ...this.base('thread_name', 'M', 0, tid), args: { name: name() } })
    out.push({ ...this.base('thread_sort_index', 'M', 0, tid), args: { sort_index: tid } })
    return tid
  }

  private cpuTrack(out: TraceEvent[], cpu: number | null): number {
    if (cpu === null) return this.track(out, MACHINE_TID, () => 'machine')
    return this.track(out, cpu, () => `CPU ${cpu}`)
  }

  private taskTrack(out: TraceEvent[], task: number, cpu: number): number {
    return this.track(out, TASK_TID_BASE + task, () => `${this.names.name(task, cpu)} (${task}) kmaps`)
  }

  private label(pid: number | null, name: unknown, cpu: number): string {
    if (pid === null) return typeof name === 'string' ? name : 'unknown'
    return `${this.names.name(pid, cpu)}-${pid}`
  }

  /** The trace events one simulator event turns into (often none). */
  convert(e: SimEvent): TraceEvent[] {
    const out: TraceEvent[] = []
    this.names.observe(e)
    this.firstTs ??= e.ts
    this.lastTs = e.ts
    const cpu = e.cpu
    // In interrupt context pid is null and `task` names the interrupted task.
    const task = e.pid ?? (typeof e.task === 'number' ? e.task : null)
    switch (e.type) {
      case 'sched_switch':
        if (cpu !== null) this.schedSwitch(out, e, cpu)
        break
      case 'kmap':
        if (cpu !== null && task !== null) this.kmap(out, e, cpu, task)
        // A pool kmap adds a user to its slot (pkmap_map already counted the mapping).
        if (typeof e.nr === 'number') this.pool(out, e, e.nr, (this.poolCount.get(e.nr) ?? 1) + 1)
        break
      case 'kunmap':
        if (cpu !== null && task !== null) this.kunmap(out, e, task)
        break
      case 'pkmap_unmap':
        if (task !== null) this.asyncEnd(out, e.ts, `${task}|pool|${String(e.pfn)}`, TASK_TID_BASE + task)
        this.pool(out, e, e.nr, e.count)
        break
      case 'pkmap_map':
        this.pool(out, e, e.nr, 1)
        break
      case 'pkmap_flush':
        for (const nr of (e.freed as number[] | undefined) ?? []) this.poolCount.delete(nr)
        this.poolCounter(out, e)
        break
      case 'pte_set':
      case 'pte_clear':
        // A clear of an already empty PTE (the B2 path) carries pfn null and frees nothing.
        if (cpu !== null && (e.type === 'pte_set' || e.pfn !== null)) this.slotCounter(out, e, cpu, e.type === 'pte_set' ? 1 : -1)
        break
      case 'diagnostic':
        out.push({ ...this.base(String(e.id), 'i', e.ts, this.cpuTrack(out, cpu)), s: cpu === null ? 'g' : 't', args: { kind: e.kind, message: e.message, pid: task } })
        break
      case 'fault':
        out.push({ ...this.base('fault', 'i', e.ts, this.cpuTrack(out, cpu)), s: 't', args: { addr: e.addr, reason: e.reason, pid: task } })
        break
      case 'halt':
        out.push({ ...this.base('halt', 'i', e.ts, this.cpuTrack(out, cpu)), s: 'g', args: { reason: e.reason } })
        break
    }
    return out
  }

  private schedSwitch(out: TraceEvent[], e: SimEvent, cpu: number): void {
    const tid = this.cpuTrack(out, cpu)
    const prevPid = e.prevPid as number | null
    const prev = this.running.get(cpu) ?? { label: this.label(prevPid, e.prevName, cpu), pid: prevPid, start: this.firstTs! }
    out.push({ ...this.base(prev.label, 'X', prev.start, tid), dur: (e.ts - prev.start) / 1000, args: { pid: prev.pid, prevState: e.prevState } })
    const nextPid = e.nextPid as number | null
    this.running.set(cpu, { label: this.label(nextPid, e.nextName, cpu), pid: nextPid, start: e.ts })
  }

  private kmap(out: TraceEvent[], e: SimEvent, cpu: number, task: number): void {
    const tid = this.taskTrack(out, task, cpu)
    const name = `${String(e.api)} ${hexPfn(e.pfn)}`
    const args = { addr: e.addr, pfn: e.pfn, slot: e.slot, fixIdx: e.fixIdx, cpu, inIrq: e.pid === null }
    if (typeof e.slot === 'number') {
      out.push({ ...this.base(name, 'B', e.ts, tid), args })
      const stack = this.slotMaps.get(task) ?? []
      stack.push(e.slot)
      this.slotMaps.set(task, stack)
      return
    }
    const key = e.nr !== undefined ? `${task}|pool|${String(e.pfn)}` : `${task}|${String(e.addr)}`
    const id = this.nextAsyncId++
    const open = this.asyncMaps.get(key) ?? []
    open.push({ id, name })
    this.asyncMaps.set(key, open)
    out.push({ ...this.base(name, 'b', e.ts, tid), cat: 'kmap', id, args: { ...args, nr: e.nr ?? null } })
  }

  private kunmap(out: TraceEvent[], e: SimEvent, task: number): void {
    const tid = TASK_TID_BASE + task
    if (typeof e.slot !== 'number') {
      this.asyncEnd(out, e.ts, `${task}|${String(e.addr)}`, tid)
      return
    }
    // The popped slot is always the top one; an unmap of an empty stack (B2) has slot -1.
    const stack = this.slotMaps.get(task)
    if (stack === undefined || stack[stack.length - 1] !== e.slot) return
    stack.pop()
    out.push({ ...this.base('', 'E', e.ts, tid), args: { unmappedAs: e.addr } })
  }

  private asyncEnd(out: TraceEvent[], ts: number, key: string, tid: number): void {
    const open = this.asyncMaps.get(key)
    const m = open?.pop()
    if (m === undefined) return
    if (open!.length === 0) this.asyncMaps.delete(key)
    out.push({ ...this.base(m.name, 'e', ts, tid), cat: 'kmap', id: m.id })
  }

  private slotCounter(out: TraceEvent[], e: SimEvent, cpu: number, delta: number): void {
    const n = (this.liveSlots.get(cpu) ?? 0) + delta
    this.liveSlots.set(cpu, n)
    out.push({ ...this.base(`live local slots CPU ${cpu}`, 'C', e.ts, this.cpuTrack(out, cpu)), args: { slots: n } })
  }

  private pool(out: TraceEvent[], e: SimEvent, nr: unknown, count: unknown): void {
    if (typeof nr !== 'number' || typeof count !== 'number') return
    if (count === 0) this.poolCount.delete(nr)
    else this.poolCount.set(nr, count)
    this.poolCounter(out, e)
  }

  private poolCounter(out: TraceEvent[], e: SimEvent): void {
    let inUse = 0
    for (const c of this.poolCount.values()) if (c >= 2) inUse++
    out.push({ ...this.base('pkmap pool', 'C', e.ts, this.cpuTrack(out, e.cpu)), args: { mapped: this.poolCount.size, inUse } })
  }

  /** Closes what is still open at the end of the trace: running tasks and live mappings. */
  finish(): TraceEvent[] {
    const out: TraceEvent[] = []
    for (const [cpu, r] of this.running) out.push({ ...this.base(r.label, 'X', r.start, cpu), dur: (this.lastTs - r.start) / 1000, args: { pid: r.pid } })
    for (const [task, stack] of this.slotMaps)
      for (let i = stack.length; i > 0; i--) out.push({ ...this.base('', 'E', this.lastTs, TASK_TID_BASE + task), args: { stillMapped: true } })
    for (const [key, open] of this.asyncMaps) {
      const tid = TASK_TID_BASE + Number(key.slice(0, key.indexOf('|')))
      for (const m of open) out.push({ ...this.base(m.name, 'e', this.lastTs, tid), cat: 'kmap', id: m.id, args: { stillMapped: true } })
    }
    return out
  }
}

export async function* encodePerfetto(events: EventSource, options: PerfettoOptions): AsyncGenerator<string, void, undefined> {
  const { pid } = options
  const name = options.name ?? `kmaplab machine ${pid}`
  // traceEvents comes first so a streaming reader meets the events before anything else.
  yield '{"traceEvents":[\n'
  yield JSON.stringify({ name: 'process_name', ph: 'M', ts: 0, pid, tid: 0, args: { name } })
  const tracks = new PerfettoTracks(pid)
  for await (const e of events) for (const t of tracks.convert(e)) yield ',\n' + JSON.stringify(t)
  for (const t of tracks.finish()) yield ',\n' + JSON.stringify(t)
  yield '\n],"displayTimeUnit":"ns","otherData":{"source":"kmaplab","timeBase":"simulated"}}\n'
}
