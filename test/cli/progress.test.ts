// The export progress bar: drawn on a terminal only, with events of a known total or bytes alone.
import t from 'tap'
import { formatBytes, Progress } from '../../src/cli/progress.js'

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = { isTTY, columns: 200, text: '', write: (chunk: string) => ((s.text += chunk), true) }
  return s as unknown as NodeJS.WriteStream & { text: string }
}

t.test('on a terminal: a bar with events of the total, then a newline', async (t) => {
  const tty = fakeStream(true)
  const p = new Progress('m_x jsonl', 200, tty)
  p.update(1000, 50)
  p.finish(4096, 200)
  const frames = tty.text.split('\r').filter(Boolean)
  t.match(frames[0], /^m_x jsonl \[#{8}\.{22}\]  25%  50\/200 events  1000 B  /)
  t.match(frames.at(-1), /^m_x jsonl \[#{30}\] 100%  200\/200 events  4\.0 KiB  .*\n$/)
})

t.test('without a known count: bytes only; not a terminal: nothing at all', async (t) => {
  const tty = fakeStream(true)
  new Progress('m_x perfetto', null, tty).finish(3 * 1024 * 1024, null)
  t.match(tty.text, /^\rm_x perfetto 3\.0 MiB  [\d.]+ \w+\/s\x1b\[K\n$/)
  const pipe = fakeStream(false)
  const p = new Progress('m_x ftrace', 10, pipe)
  p.update(10, 1, true)
  p.finish(20, 10)
  t.equal(pipe.text, '')
  t.equal(formatBytes(512), '512 B')
})
