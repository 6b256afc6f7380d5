// The dashboard in a real browser (Debian's chromium driven by playwright-core): a context
// switch on CPU 1 must show the right page at the right slot address, owned by the right
// task, before and after each switch, and the scrubber must show the past.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { chromium, type Page } from 'playwright-core'
import { listeningLab } from '../api/fixtures/stream.js'

const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))
// x86_32, 2 CPUs, KM_MAX_IDX 16: CPU 1's slot 0 is fixmap index 68 + 16 = 84, 0xfffff000 - 84 pages.
const SLOT0_CPU1 = '0xfffab000'
const PAGE_A = 0x40000
const PAGE_B = 0x40001

/** Waits until CPU 1's slot 0 shows `pfn` owned by `pid`, and returns the cell's text. */
async function slot0(page: Page, pfn: number, pid: number): Promise<string> {
  const cell = page.locator(`.slot[data-cpu="1"][data-slot="0"][data-pfn="${pfn}"][data-owner="${pid}"]`)
  await cell.waitFor({ timeout: 10_000 })
  return (await cell.textContent()) ?? ''
}

async function kstack(page: Page, pid: number): Promise<string> {
  return (await page.locator(`tr.task[data-pid="${pid}"] .kstack`).textContent()) ?? ''
}

t.test('the dashboard follows a context switch live', { skip: existsSync(CHROMIUM) ? false : `no browser: ${CHROMIUM} is not installed (apt-get install -y chromium)` }, async (t) => {
  const lab = await listeningLab()
  t.teardown(lab.close)
  const { id } = await lab.post('/v1/machines', { arch: 'x86_32', cpus: 2, seed: 1 })
  const op = (body: unknown): Promise<any> => lab.post(`/v1/machines/${id}/ops`, body)
  await op({ ops: [{ op: 'spawn', name: 'A', cpu: 1 }, { op: 'spawn', name: 'B', cpu: 1 }] })
  const mappedByA = await op({ op: 'kmap_local_page', pid: 1, page: PAGE_A })
  t.equal(mappedByA.result.addr, SLOT0_CPU1)

  const profile = mkdtempSync(join(tmpdir(), 'kmaplab-chromium-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 1000 },
  })
  t.teardown(async () => {
    await browser.close()
    rmSync(profile, { recursive: true, force: true })
  })
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(err.message))
  page.on('console', (m) => void (m.type() === 'error' && problems.push(m.text())))
  await page.goto(`${lab.base}/#/m/${id}`)

  // Before the switch: A's page at slot 0 of CPU 1.
  t.match(await slot0(page, PAGE_A, 1), new RegExp(`slot 0.*${SLOT0_CPU1}.*pfn 0x40000.*A \\(pid 1\\)`))
  await page.locator('#conn', { hasText: 'live' }).waitFor()

  // Preempt A, B maps: the same slot address now holds B's page; A keeps its page in its kmap stack.
  await op({ op: 'preempt', cpu: 1 })
  await op({ op: 'kmap_local_page', pid: 2, page: PAGE_B })
  t.match(await slot0(page, PAGE_B, 2), new RegExp(`${SLOT0_CPU1}.*pfn 0x40001.*B \\(pid 2\\)`))
  t.match(await kstack(page, 1), '0: 0x40000', "A's saved slot")

  // Switch back through the page's own ops form: kmap_sched_in restores A's page.
  await page.locator('#op-text').fill('{"op": "preempt", "cpu": 1}')
  await page.locator('form:has(#op-text) button').click()
  await page.locator('#op-out', { hasText: '"switched": true' }).waitFor()
  t.match(await slot0(page, PAGE_A, 1), new RegExp(`${SLOT0_CPU1}.*pfn 0x40000.*A \\(pid 1\\)`))
  t.match(await kstack(page, 2), '0: 0x40001', "B's saved slot")
  await page.locator('.ev[data-type="sched_switch"]').first().waitFor()
  t.ok((await page.locator('.ev[data-type="kmap_sched_in"]').count()) >= 1, 'the event log shows the switch')
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })

  // The scrubber: as of the seq right after B's map, B owns the slot again.
  const { seq: afterB } = (await (await fetch(`${lab.base}/v1/machines/${id}/events?type=counter&pid=2`)).json()).events.at(-1)
  await page.locator('#scrub').fill(String(afterB))
  t.match(await slot0(page, PAGE_B, 2), 'B (pid 2)')
  t.match(await page.locator('#scrub-label').textContent(), `${afterB} (past`)
  await page.locator('button', { hasText: 'live' }).click()
  await slot0(page, PAGE_A, 1)
  t.same(problems, [], 'no script errors')
})
