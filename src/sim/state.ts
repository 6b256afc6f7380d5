/** machine.state(): the contract's state document (section 6), built from the kernel state. */
import { hexAddr } from './addr.js'
import type { Diagnostic, Kernel } from './kernel.js'
import type { Task } from './task.js'

function kptes(t: Task): { slot: number; pfn: number; prot: string }[] {
  const kpte: { slot: number; pfn: number; prot: string }[] = []
  t.kmapCtrl.pteval.forEach((pte, slot) => {
    if (pte !== null) kpte.push({ slot, pfn: pte.pfn, prot: pte.prot })
  })
  return kpte
}

function taskState(t: Task) {
  const kpte = kptes(t)
  return {
    pid: t.pid,
    name: t.name,
    cpu: t.cpu,
    state: t.state,
    kmapIdx: t.kmapCtrl.idx,
    kpte,
    preemptCount: t.preemptCount,
    pagefaultDisabled: t.pagefaultDisabled,
    migrationDisabled: t.migrationDisabled,
    cpusAllowed: [...t.cpusMask],
    cpusPtr: [...t.cpusAllowed()],
    waitingFor: t.wait,
    lastResult: t.lastResult,
  }
}

export function buildState(k: Kernel) {
  const l = k.layout
  const fixmap: { fixIdx: number; cpu: number | null; slot: number | null; addr: string; pfn: number; prot: string }[] = []
  k.fixmap.forEach((pte, fixIdx) => {
    if (pte === null) return
    const rel = fixIdx - l.FIX_KMAP_BEGIN!
    const inWindow = rel >= 0
    fixmap.push({
      fixIdx,
      cpu: inWindow ? Math.floor(rel / l.KM_MAX_IDX) : null,
      slot: inWindow ? rel % l.KM_MAX_IDX : null,
      addr: k.fixAddr(fixIdx),
      pfn: pte.pfn,
      prot: pte.prot,
    })
  })
  const pool = k.pool
  return {
    seq: k.seq,
    ts: k.ts,
    status: k.status,
    haltReason: k.haltReason,
    cpus: k.cpus.map((cpu) => ({
      cpu: cpu.id,
      current: cpu.curr.pid,
      runqueue: cpu.runqueue.map((t) => t.pid),
      irq: cpu.irq.map((f) => ({ kind: f.kind, irqsDisabled: f.irqsDisabled })),
      irqsDisabled: cpu.irqsDisabled,
      nrPinned: cpu.nrPinned,
      preemptCount: k.preemptCountOf(cpu),
      needResched: cpu.needResched,
      // The idle task takes no ops, but an interrupt on an idle CPU maps on its stack.
      idle: {
        name: cpu.idle.name,
        kmapIdx: cpu.idle.kmapCtrl.idx,
        kpte: kptes(cpu.idle),
        pagefaultDisabled: cpu.idle.pagefaultDisabled,
        migrationDisabled: cpu.idle.migrationDisabled,
      },
    })),
    tasks: [...k.tasks.values()].map(taskState),
    fixmap,
    pkmap:
      pool === null
        ? null
        : {
            lastPkmapNr: pool.lastPkmapNr,
            slots: [...pool.count].flatMap((count, nr) =>
              count === 0 ? [] : [{ nr, addr: hexAddr(l.pkmapBaseVpn! + nr), pfn: pool.pte[nr]?.pfn ?? null, count }],
            ),
            waiters: pool.waiters.map((t) => t.pid),
          },
    ioMappings: [...k.ioMappings.values()].map((m) => ({
      mapping: m.id,
      base: '0x' + m.base.toString(16),
      size: m.size,
      iomem: m.iomemVpn === null ? null : hexAddr(m.iomemVpn, m.iomemOff),
    })),
    diagnostics: k.diagnostics.map((d): Diagnostic => ({ ...d })),
    debugLocks: k.debugLocks,
  }
}

export type State = ReturnType<typeof buildState>
