// One machine, live: the kmap slots of every CPU, the tasks with their kmap stacks and
// counters, the PKMAP pool, diagnostics, the event log, an ops form and a seq scrubber.
// The state document is fetched again (at most every 100 ms) when events arrive; the
// scrubber fetches it as of a past seq instead.
import { api, Stream } from './api.js'
import { h, hex } from './dom.js'
import { kmapGrid } from './kmap.js'

const LOG_MAX = 2000
/** Events shown from before the page was opened. */
const LOG_HISTORY = 200

export class MachineView {
  constructor(root, id) {
    this.root = root
    this.id = id
    this.events = []
    this.viewSeq = null // null: live; otherwise the past seq shown
    this.headSeq = 0
  }

  async open() {
    this.machine = await api('GET', `/v1/machines/${this.id}`)
    this.state = await api('GET', `/v1/machines/${this.id}/state`)
    this.headSeq = this.state.seq
    this.build()
    this.render()
    this.stream = new Stream(this.id, Math.max(0, this.state.seq - LOG_HISTORY), {
      onEvents: (evs) => this.onEvents(evs),
      onStatus: (s) => (this.el.conn.textContent = s),
      onEnd: (msg) => this.onEnd(msg),
    })
  }

  close() {
    this.stream?.close()
    clearTimeout(this.refreshTimer)
  }

  build() {
    const c = this.machine.config
    const el = (this.el = {})
    el.status = h('span', { class: 'badge' })
    el.conn = h('span', { class: 'badge muted', id: 'conn' }, 'connecting')
    el.seq = h('span', { id: 'seq' })
    el.scrub = h('input', { type: 'range', min: 0, id: 'scrub', oninput: () => this.scrubbed() })
    el.scrubLabel = h('span', { id: 'scrub-label' })
    el.live = h('button', { onclick: () => this.goLive() }, 'live')
    el.grid = h('div', { id: 'kmap-grid' })
    el.tasks = h('div', { id: 'tasks' })
    el.pool = h('div', { id: 'pkmap' })
    el.diags = h('div', { id: 'diagnostics' })
    el.filter = h('input', { id: 'log-filter', placeholder: 'filter: kmap sched cpu:1 pid:2', oninput: () => this.renderLog() })
    el.log = h('div', { id: 'log', class: 'log' })
    el.opText = h('textarea', { id: 'op-text', rows: 4, spellcheck: 'false' }, '{"op": "spawn", "name": "A", "cpu": 0}')
    el.opOut = h('pre', { id: 'op-out', class: 'out' })
    el.banner = h('div', { id: 'banner', class: 'banner', hidden: true })
    const debug = c.config.DEBUG_KMAP_LOCAL ? ', DEBUG_KMAP_LOCAL (guard slots)' : ''
    this.root.replaceChildren(
      h('section', { class: 'head' },
        h('h1', {}, h('a', { href: '#/' }, 'machines'), ' / ', this.id),
        h('div', { class: 'facts' }, `${c.arch}, ${c.cpus} CPUs, kernel ${c.kernel}, KM_MAX_IDX ${c.KM_MAX_IDX}${debug}`, ' ', el.status, ' ', el.conn, ' seq ', el.seq),
        el.banner,
        h('div', { class: 'scrubber' }, h('label', { for: 'scrub' }, 'view at seq '), el.scrub, el.scrubLabel, el.live)),
      h('section', { class: 'panel wide' }, h('h2', {}, 'kmap slots (fixmap kmap window, per CPU)'), el.grid),
      h('div', { class: 'columns' },
        h('section', { class: 'panel' }, h('h2', {}, 'Tasks'), el.tasks),
        h('div', {},
          h('section', { class: 'panel' }, h('h2', {}, 'PKMAP pool'), el.pool),
          h('section', { class: 'panel' }, h('h2', {}, 'Diagnostics'), el.diags),
          h('section', { class: 'panel' }, h('h2', {}, 'Run ops'),
            h('form', { onsubmit: (e) => this.runOps(e) }, el.opText, h('button', {}, 'run'), h('span', { class: 'muted' }, ' one op, an array, or {"ops": [...]}')),
            el.opOut))),
      h('section', { class: 'panel wide' }, h('h2', {}, 'Events'), el.filter, el.log))
  }

  onEvents(evs) {
    this.events.push(...evs)
    if (this.events.length > LOG_MAX) this.events.splice(0, this.events.length - LOG_MAX)
    this.headSeq = Math.max(this.headSeq, evs.at(-1).seq)
    this.renderLog()
    this.renderScrubber()
    if (this.viewSeq === null) this.scheduleRefresh()
  }

  onEnd(msg) {
    this.el.conn.textContent = 'ended'
    this.el.banner.hidden = false
    this.el.banner.textContent = msg.type === 'halted' ? `halted at seq ${msg.seq}: ${msg.reason}` : 'this machine was deleted'
    this.scheduleRefresh()
  }

  scheduleRefresh() {
    if (this.refreshTimer) return
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined
      this.refresh()
    }, 100)
  }

  async refresh() {
    const at = this.viewSeq === null ? '' : `?at=${this.viewSeq}`
    try {
      this.state = await api('GET', `/v1/machines/${this.id}/state${at}`)
      this.render()
    } catch (err) {
      this.el.banner.hidden = false
      this.el.banner.textContent = err.message
    }
  }

  scrubbed() {
    const v = Number(this.el.scrub.value)
    this.viewSeq = v >= this.headSeq ? null : v
    this.renderScrubber()
    clearTimeout(this.scrubTimer)
    this.scrubTimer = setTimeout(() => this.refresh(), 150)
  }

  goLive() {
    this.viewSeq = null
    this.refresh()
  }

  async runOps(e) {
    e.preventDefault()
    let body
    try {
      body = JSON.parse(this.el.opText.value)
    } catch {
      this.el.opOut.textContent = 'not JSON'
      return
    }
    const reply = await this.stream.run(body).catch((err) => ({ error: { message: err.message } }))
    this.el.opOut.className = reply.type === 'error' ? 'out bad' : 'out'
    this.el.opOut.textContent = JSON.stringify(reply.type === 'error' ? reply.error : reply.result ?? { results: reply.results?.map((r) => r.result), refused: reply.refused }, null, 1)
  }

  render() {
    const s = this.state
    this.el.status.textContent = s.status
    this.el.status.className = `badge ${s.status === 'halted' ? 'bad' : 'good'}`
    this.renderScrubber()
    this.renderGrid()
    this.renderTasks()
    this.renderPool()
    this.renderDiagnostics()
  }

  renderScrubber() {
    this.el.seq.textContent = String(this.headSeq)
    this.el.scrub.max = String(this.headSeq)
    if (this.viewSeq === null) this.el.scrub.value = String(this.headSeq)
    this.el.scrubLabel.textContent = this.viewSeq === null ? ' live' : ` ${this.viewSeq} (past: state replayed to the last op ending there)`
    this.el.scrubLabel.className = this.viewSeq === null ? 'good' : 'warn'
  }

  renderGrid() {
    const grid = kmapGrid(this.machine.config, this.state)
    if (!grid) {
      this.el.grid.replaceChildren(h('p', { class: 'muted' }, 'No kmap window on this config: kmap_local_page returns the direct-map address.'))
      return
    }
    const name = (pid) => this.state.tasks.find((t) => t.pid === pid)?.name
    this.el.grid.replaceChildren(...grid.map((row) => {
      const cpu = this.state.cpus.find((c) => c.cpu === row.cpu)
      return h('div', { class: 'cpu-row' },
        h('div', { class: 'cpu-label' }, h('b', {}, `CPU ${row.cpu}`),
          h('div', { class: 'muted' }, cpu.current === 0 ? 'idle' : `running ${name(cpu.current)} (pid ${cpu.current})`),
          row.inIrq ? h('div', { class: 'warn' }, 'in interrupt') : null),
        h('div', { class: 'slots' }, ...row.slots.map((s) => {
          const attrs = { class: `slot${s.live ? ' live' : ''}${s.guard || s.neverUsed ? ' guard' : ''}`, title: `fixmap index ${s.fixIdx}${s.neverUsed ? ': reserved, never mapped (the 16th push BUGs first)' : ''}`, dataset: { cpu: row.cpu, slot: s.slot, addr: s.addr } }
          if (s.live) Object.assign(attrs.dataset, { pfn: s.live.pfn, owner: s.live.owner.pid })
          return h('div', attrs,
            h('div', { class: 'slot-no' }, `slot ${s.slot}`, s.guard ? ' · guard' : s.neverUsed ? ' · never used' : ''),
            h('div', { class: 'addr' }, s.addr),
            s.live ? [h('div', { class: 'pfn' }, `pfn ${hex(s.live.pfn)}`), h('div', { class: 'owner' }, `${s.live.owner.name} (pid ${s.live.owner.pid})`)] : null)
        })))
    }))
  }

  renderTasks() {
    const head = ['pid', 'name', 'cpu', 'state', 'kmap stack (slot: pfn)', 'kmapIdx', 'preempt', 'pagefault', 'migrate']
    const rows = this.state.tasks.map((t) =>
      h('tr', { class: `task ${t.state}`, dataset: { pid: t.pid } },
        h('td', {}, String(t.pid)), h('td', {}, t.name), h('td', {}, String(t.cpu)), h('td', {}, t.state),
        h('td', { class: 'kstack' }, t.kpte.length === 0 ? h('span', { class: 'muted' }, 'empty') : t.kpte.map((k) => h('span', { class: 'kpte' }, `${k.slot}: ${hex(k.pfn)}`))),
        h('td', {}, String(t.kmapIdx)), h('td', {}, String(t.preemptCount)), h('td', {}, String(t.pagefaultDisabled)), h('td', {}, String(t.migrationDisabled))))
    this.el.tasks.replaceChildren(this.state.tasks.length === 0 ? h('p', { class: 'muted' }, 'no tasks: spawn one below') :
      h('table', { class: 'list' }, h('tr', {}, ...head.map((x) => h('th', {}, x))), ...rows))
  }

  renderPool() {
    const last = this.machine.config.LAST_PKMAP
    const { slots, waiters } = this.state.pkmap
    if (!last) {
      this.el.pool.replaceChildren(h('p', { class: 'muted' }, 'no pool on this config (no HIGHMEM)'))
      return
    }
    // Set through the CSSOM: the page's CSP allows no inline style attributes.
    const fill = h('div', { class: 'fill' })
    fill.style.width = `${Math.max((100 * slots.length) / last, slots.length ? 0.5 : 0)}%`
    this.el.pool.replaceChildren(h('div', {},
      h('div', { class: 'bar' }, fill),
      h('p', {}, `${slots.length} of ${last} slots in use`, waiters.length ? h('span', { class: 'warn' }, `, ${waiters.length} waiting`) : ''),
      slots.length === 0 ? null : h('div', { class: 'pool-slots' }, ...slots.slice(0, 64).map((s) => h('span', { class: 'kpte' }, `#${s.nr} ${s.addr} → ${hex(s.pfn)} ×${s.count - 1}`)))))
  }

  renderDiagnostics() {
    const d = this.state.diagnostics
    this.el.diags.replaceChildren(d.length === 0 ? h('p', { class: 'muted' }, 'none') :
      h('ul', { class: 'diags' }, ...d.map((x) => h('li', { class: x.kind === 'BUG' ? 'bad' : 'warn' }, h('b', {}, `${x.id} ${x.kind}`), ` seq ${x.seq}, pid ${x.pid}, CPU ${x.cpu}: ${x.message}`))))
  }

  renderLog() {
    const words = this.el.filter.value.trim().split(/\s+/).filter(Boolean)
    const want = (e) => words.every((w) => {
      const m = /^(cpu|pid):(\d+)$/.exec(w)
      return m ? e[m[1]] === Number(m[2]) : e.type.includes(w)
    })
    const shown = this.events.filter(want).slice(-300).reverse()
    this.el.log.replaceChildren(...shown.map((e) => {
      const { seq, ts, type, cpu, pid, ...rest } = e
      const cls = type === 'diagnostic' ? 'diag' : type === 'halt' ? 'bad' : ''
      return h('div', { class: `ev ${cls}`, dataset: { seq, type } },
        h('span', { class: 'seq' }, String(seq)), h('span', { class: 'ts' }, `${ts} ns`), h('span', { class: 'type' }, type),
        h('span', {}, cpu === null ? '' : `cpu ${cpu}`), h('span', {}, pid === null ? '' : `pid ${pid}`),
        h('span', { class: 'rest' }, JSON.stringify(rest)))
    }))
  }
}
