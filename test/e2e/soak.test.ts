// The soak of bench/soak.ts, 20 seconds of it: mixed REST, WebSocket and export load with no
// failed request and no stream gap. Whether the figures stayed flat is printed, not asserted:
// 20 seconds on a shared machine are too few for that verdict (`npm run soak` gives it).
import t from 'tap'
import { soak, summary } from '../../bench/soak.js'

t.test('a 20-second soak: no errors, no gaps', async (t) => {
  const report = await soak({ seconds: Number(process.env.KMAPLAB_SOAK_SECONDS ?? 20) })
  t.comment(summary(report))
  t.same(report.errors, [], 'no failed request and no gap in the resumed stream')
  t.ok(report.samples.length >= 10, `${report.samples.length} samples`)
  t.ok(report.exports > 0 && report.resumes > 0, `${report.exports} export rounds, ${report.resumes} resumes`)
})
