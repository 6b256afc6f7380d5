/**
 * convert-check (spec 9.3, issue 6): runs a scenario as written and converted to
 * kmap_local, step by step on two fresh machines, and reports every divergence that
 * matters, each with its step and why it matters. The verdict is `safe` unless one of them
 * is marked unsafe. The rules (docs/scenarios.md, "convert-check"):
 * - unsafe: a user copy that now faults in (and may sleep) where it stopped short before
 *   (the code relied on the short count, e.g. for a bounce-buffer fallback); a step that
 *   uses per-CPU data (`perCpu: true`, `smp_processor_id`) in a section that is now
 *   preemptible; a preemption that now happens inside such a section; a diagnostic
 *   (might_sleep splat, WARN, BUG) that appears; an access that now sees another page or
 *   faults; an op that one run refuses and the other takes;
 * - changed: a diagnostic that disappears (typically the might_sleep splat of sleeping in
 *   an atomic section, which kmap_local allows), a different slot or address, a preemption
 *   inside a section that touches no per-CPU data.
 */
import type { State } from '../sim/index.js'
import { ATOMIC_UNMAPS, CONVERSIONS, convertScenario } from './convert.js'
import type { ExecutorFactory } from './executor.js'
import { firedIds } from './expect.js'
import type { Scenario } from './format.js'
import { runScenario, type StepRecord } from './run.js'

export type Severity = 'unsafe' | 'changed'

export interface Divergence {
  /** The step (from 1) where it shows. */
  step: number
  kind: string
  severity: Severity
  explanation: string
  asWritten: unknown
  converted: unknown
}

export interface ConvertReport {
  scenario: string
  /** Steps whose op was converted, with the new op name. */
  conversions: { step: number; from: string; to: string }[]
  safe: boolean
  divergences: Divergence[]
}

/** A map-to-unmap stretch of one task in the code as written. */
interface Section {
  pid: number
  map: number
  /** The unmap step, or null when the scenario ends with the mapping held. */
  unmap: number | null
}

const SLEEP_SPLATS = new Set(['S1', 'S2'])

/** The task-context atomic sections, from the ops of the run as written. */
function sections(records: StepRecord[]): Section[] {
  const open = new Map<number, Section[]>()
  const all: Section[] = []
  for (const r of records) {
    const name = String(r.op?.op)
    const pid = r.op?.pid
    if (CONVERSIONS[name] === undefined || typeof pid !== 'number' || r.refusal !== null) continue
    const stack = open.get(pid) ?? []
    open.set(pid, stack)
    if (!ATOMIC_UNMAPS.has(name)) {
      const s = { pid, map: r.step, unmap: null }
      stack.push(s)
      all.push(s)
    } else {
      const s = stack.pop()
      if (s !== undefined) s.unmap = r.step
    }
  }
  return all
}

function inside(s: Section, step: number): boolean {
  return step > s.map && (s.unmap === null || step < s.unmap)
}

/** Whether `pid` could be preempted while running at this state: full PREEMPT rules. */
function preemptible(state: State | null, pid: number): boolean | null {
  const t = state?.tasks.find((x) => x.pid === pid)
  const cpu = t === undefined ? undefined : state!.cpus[t.cpu]
  if (t === undefined || cpu === undefined) return null
  return t.preemptCount === 0 && cpu.irq.length === 0 && !cpu.irqsDisabled
}

/** The sections of the code as written, and those that use per-CPU data of their own task. */
interface Sections {
  all: Section[]
  perCpu: Set<Section>
}

/** The task a step acts on: `pid`, or for a tick the task running on that CPU before it. */
function actingTask(o: StepRecord, before: State | null): number | null {
  if (typeof o.op?.pid === 'number' && o.op.op !== 'switch_to') return o.op.pid
  const cpu = before?.cpus.find((x) => x.cpu === o.op?.cpu)
  return cpu === undefined ? null : cpu.current
}

/** The comparison of one step in both runs; `before` are the two states the step started from. */
function compareStep(o: StepRecord, c: StepRecord, before: [State | null, State | null], secs: Sections): Divergence[] {
  const out: Divergence[] = []
  const add = (kind: string, severity: Severity, explanation: string, asWritten: unknown, converted: unknown) =>
    out.push({ step: o.step, kind, severity, explanation, asWritten, converted })
  const op = String(o.op?.op)

  if (o.refusal?.code !== c.refusal?.code) {
    add('refusal', 'unsafe', 'one run refuses this op and the other takes it: the converted code reaches a different state here', o.refusal ?? o.result, c.refusal ?? c.result)
    return out
  }

  const oNot = o.result?.notCopied
  const cNot = c.result?.notCopied
  if (op === 'copy_to_user' && typeof oNot === 'number' && typeof cNot === 'number' && oNot !== cNot) {
    if (oNot > 0 && cNot === 0)
      add('user_copy_faults_in', 'unsafe', 'the user copy now faults the page in and may sleep, where it stopped short with page faults disabled; code that relied on the short count (a bounce-buffer fallback, __copy_to_user_inatomic) no longer takes that path: keep pagefault_disable() around the copy, or drop the fallback as copy_oldmem_page did (spec 9.3 item 2)', o.result, c.result)
    else add('user_copy_differs', 'unsafe', 'the user copy copies a different amount', o.result, c.result)
  }

  const of = firedIds(o)
  const cf = firedIds(c)
  for (const id of cf.filter((x) => !of.includes(x)))
    add(SLEEP_SPLATS.has(id) ? 'sleep_splat_appears' : 'diagnostic_appears', 'unsafe', `${id} fires only after the conversion`, of, cf)
  for (const id of of.filter((x) => !cf.includes(x)))
    add(
      SLEEP_SPLATS.has(id) ? 'sleep_splat_disappears' : 'diagnostic_disappears',
      'changed',
      SLEEP_SPLATS.has(id)
        ? `${id} no longer fires: the section may sleep now (allowed in kmap_local unless the caller is atomic for another reason)`
        : `${id} no longer fires after the conversion`,
      of,
      cf,
    )

  if (typeof o.result?.addr === 'string' && (o.result.addr !== c.result?.addr || o.result.slot !== c.result?.slot))
    add('different_mapping', 'changed', 'the mapping gets a different slot or address', o.result, c.result)
  if (op === 'access' && JSON.stringify(o.result) !== JSON.stringify(c.result))
    add('different_access', 'unsafe', 'the access sees a different page, or faults, after the conversion', o.result, c.result)

  const task = actingTask(o, before[0])
  const around = secs.all.filter((s) => s.pid === task && inside(s, o.step))
  if ((op === 'preempt' || op === 'switch_to') && o.result?.switched === false && c.result?.switched === true) {
    const risky = around.some((s) => secs.perCpu.has(s))
    add('preempted_in_section', risky ? 'unsafe' : 'changed', risky
      ? 'the task is now preempted inside a section that uses per-CPU data: another task runs on this CPU in the middle'
      : 'the task is now preempted inside the section (allowed for kmap_local: its mappings come back at switch-in)', o.result, c.result)
  }
  if (o.perCpu && task !== null) {
    for (const s of around) {
      if (preemptible(before[0], task) === false && preemptible(before[1], task) === true)
        add('preemptible_per_cpu', 'unsafe', `uses per-CPU data in the section mapped at step ${s.map}, which is preemptible after the conversion: add preempt_disable() or a lock (spec 9.3 item 1)`, { preemptible: false }, { preemptible: true })
    }
  }
  return out
}

export async function convertCheck(scenario: Scenario, factory: ExecutorFactory): Promise<ConvertReport> {
  const conversion = convertScenario(scenario)
  const asWritten = await runScenario(scenario, factory, { check: false, snapshots: true })
  const converted = await runScenario(conversion.scenario, factory, { check: false, snapshots: true })
  const all = sections(asWritten.steps)
  const secs: Sections = { all, perCpu: new Set(all.filter((s) => asWritten.steps.some((r) => r.perCpu && r.op?.pid === s.pid && inside(s, r.step)))) }
  const divergences: Divergence[] = []
  asWritten.steps.forEach((o, i) => {
    const c = converted.steps[i]!
    const before: [State | null, State | null] = [asWritten.steps[i - 1]?.state ?? null, converted.steps[i - 1]?.state ?? null]
    divergences.push(...compareStep(o, c, before, secs))
  })
  return {
    scenario: scenario.name,
    conversions: conversion.steps.map((n) => {
      const from = String(scenario.steps[n - 1]!.op!.op)
      return { step: n, from, to: CONVERSIONS[from]! }
    }),
    safe: divergences.every((d) => d.severity !== 'unsafe'),
    divergences,
  }
}
