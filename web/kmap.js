// What the kmap grid shows, derived from the effective config and the state document: per
// CPU, KM_MAX_IDX slots of the fixmap kmap window, each with its fixmap index and address
// (__fix_to_virt), and, when live, the page mapped there and the task whose kmap stack owns it.

/** __fix_to_virt(idx) = FIXADDR_TOP - (idx << PAGE_SHIFT); BigInt, since x86_64 addresses pass 2^53. */
export function fixToVirt(fixaddrTop, fixIdx) {
  return '0x' + (BigInt(fixaddrTop) - (BigInt(fixIdx) << 12n)).toString(16)
}

/** With DEBUG_KMAP_LOCAL, KM_INCR is 2: every push skips a slot, left unmapped as a guard page. */
export function isGuard(config, slot) {
  return config.KM_INCR === 2 && slot % 2 === 0
}

/**
 * Without DEBUG_KMAP_LOCAL the last slot (15) is reserved but never mapped: the push that
 * would use it raises kmap_ctrl.idx to KM_MAX_IDX and BUGs first (spec 2.2).
 */
export function isNeverUsed(config, slot) {
  return !isGuard(config, slot) && slot + 1 >= config.KM_MAX_IDX
}

function owner(state, cpu, entry) {
  const c = state.cpus.find((x) => x.cpu === cpu)
  const holds = (t) => t.kpte?.some((k) => k.slot === entry.slot && k.pfn === entry.pfn)
  const task = state.tasks.find((t) => t.cpu === cpu && t.state === 'running' && holds(t))
  if (task) return { pid: task.pid, name: task.name }
  if (c?.idle && holds(c.idle)) return { pid: 0, name: c.idle.name }
  const current = state.tasks.find((t) => t.pid === c?.current)
  return current ? { pid: current.pid, name: current.name } : { pid: c?.current ?? null, name: '?' }
}

export function kmapGrid(config, state) {
  if (config.FIX_KMAP_BEGIN === null || config.FIX_KMAP_BEGIN === undefined) return null
  const n = config.KM_MAX_IDX
  return state.cpus.map((c) => ({
    cpu: c.cpu,
    inIrq: c.irq.length > 0,
    slots: Array.from({ length: n }, (_, slot) => {
      const fixIdx = config.FIX_KMAP_BEGIN + n * c.cpu + slot
      const entry = state.fixmap.find((f) => f.cpu === c.cpu && f.slot === slot)
      return {
        slot,
        fixIdx,
        addr: fixToVirt(config.layout.fixaddrTop, fixIdx),
        guard: isGuard(config, slot),
        neverUsed: isNeverUsed(config, slot),
        live: entry ? { pfn: entry.pfn, prot: entry.prot, owner: owner(state, c.cpu, entry) } : null,
      }
    }),
  }))
}
