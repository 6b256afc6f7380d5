// Properties 1 and 2 (issue 2): the kmap-window PTEs of each CPU are exactly the live slots
// of the task running there (plus its open interrupts'), at FIX_KMAP_BEGIN + slot +
// KM_MAX_IDX*cpu with addr = FIXADDR_TOP - idx*4096; a switched-out task has no PTE anywhere.
import fc from 'fast-check';
import t from 'tap';
import { checkFixmapWindow, checkSwitchedOut } from './fixtures/checks.js';
import { arbConfig, arbIntents, run } from './fixtures/driver.js';
import { assertProperty } from './fixtures/harness.js';

t.test('property 1: kmap-window PTEs of each CPU = live slots of its running task (and interrupts)', (t) => {
  let windowsChecked = 0;
  let nonEmpty = 0;
  let idleIrq = 0;
  assertProperty(
    t,
    fc.property(arbConfig(), arbIntents({ min: 50, max: 300 }), (cfg, intents) => {
      run(cfg, intents, {
        onStep: (d, s) => {
          checkFixmapWindow(d, s);
          windowsChecked++;
          if (s.next.fixmap.length > 0) nonEmpty++;
          if (s.next.cpus.some((c: { current: number; irq: unknown[] }) => c.current === 0 && c.irq.length > 0) && s.next.fixmap.length > 0) idleIrq++;
        },
      });
    }),
    800,
    0x5eed01,
  );
  t.ok(nonEmpty > 1000, `states with mapped kmap slots: ${nonEmpty} of ${windowsChecked}`);
  t.ok(idleIrq > 0, `states with an interrupt mapping on an idle CPU: ${idleIrq}`);
  t.end();
});

t.test('property 2: a switched-out task has no PTE anywhere', (t) => {
  let switchedOutWithSlots = 0;
  assertProperty(
    t,
    fc.property(arbConfig(), arbIntents({ min: 50, max: 300, weights: { preempt: 10, switch_to: 10, sleep: 5, wake: 6 } }), (cfg, intents) => {
      run(cfg, intents, {
        onStep: (d, s) => {
          checkSwitchedOut(d, s);
          for (const task of s.next.tasks) if (task.state !== 'running' && task.kpte.length > 0) switchedOutWithSlots++;
        },
      });
    }),
    800,
    0x5eed02,
  );
  t.ok(switchedOutWithSlots > 500, `task-states switched out with live slots: ${switchedOutWithSlots}`);
  t.end();
});
