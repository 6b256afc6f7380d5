// The dashboard's entry: a hash router between the machine list (#/) and one machine (#/m/ID).
import { api, ApiError, token } from './api.js'
import { h } from './dom.js'
import { MachineView } from './view.js'

const main = document.getElementById('main')
const tokenForm = document.getElementById('token-form')
let view

tokenForm.addEventListener('submit', (e) => {
  e.preventDefault()
  token.set(document.getElementById('token').value.trim())
  tokenForm.hidden = true
  route()
})

function showError(err) {
  if (err instanceof ApiError && err.status === 401) {
    tokenForm.hidden = false
    main.replaceChildren(h('p', { class: 'notice' }, 'This server needs a token: enter it above.'))
    return
  }
  main.replaceChildren(h('p', { class: 'notice bad' }, String(err.message ?? err)))
}

async function listView() {
  const { machines } = await api('GET', '/v1/machines?limit=1000')
  const form = h('form', { class: 'create', onsubmit: create },
    h('label', {}, 'arch ', h('select', { name: 'arch' }, h('option', {}, 'x86_32'), h('option', {}, 'x86_64'))),
    h('label', {}, 'CPUs ', h('input', { name: 'cpus', type: 'number', min: 1, max: 64, value: 2 })),
    h('label', {}, h('input', { name: 'debug', type: 'checkbox' }), ' DEBUG_KMAP_LOCAL'),
    h('label', {}, 'seed ', h('input', { name: 'seed', type: 'number', value: 1 })),
    h('button', {}, 'create machine'))
  const rows = machines.map((m) =>
    h('tr', {},
      h('td', {}, h('a', { href: `#/m/${m.id}` }, m.id)),
      h('td', {}, `${m.config.arch}, ${m.config.cpus} CPUs, ${m.config.kernel}`),
      h('td', {}, String(m.seq)),
      h('td', { class: m.status === 'halted' ? 'bad' : '' }, m.status),
      h('td', { class: 'muted' }, m.createdAt)))
  main.replaceChildren(
    h('section', { class: 'panel' }, h('h2', {}, 'New machine'), form),
    h('section', { class: 'panel' }, h('h2', {}, `Machines (${machines.length})`),
      machines.length === 0 ? h('p', { class: 'muted' }, 'none yet') :
        h('table', { class: 'list' }, h('tr', {}, ...['machine', 'config', 'seq', 'status', 'created'].map((t) => h('th', {}, t))), ...rows)))
}

async function create(e) {
  e.preventDefault()
  const f = e.target
  const config = { arch: f.arch.value, cpus: Number(f.cpus.value), seed: Number(f.seed.value) }
  if (f.debug.checked) config.config = { DEBUG_KMAP_LOCAL: true }
  try {
    const m = await api('POST', '/v1/machines', config)
    location.hash = `#/m/${m.id}`
  } catch (err) {
    showError(err)
  }
}

async function route() {
  view?.close()
  view = undefined
  const m = /^#\/m\/([\w-]+)$/.exec(location.hash)
  try {
    if (m) {
      view = new MachineView(main, m[1])
      await view.open()
    } else {
      await listView()
    }
  } catch (err) {
    showError(err)
  }
}

window.addEventListener('hashchange', route)
route()
