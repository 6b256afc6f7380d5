// Property 8 (issue 3, spec section 7): on HIGHMEM x86_32 with a small pool (LAST_PKMAP 8 or
// 16, so wraps happen quickly): a page has at most one pool address; a slot with count >= 2
// is never reused for another page while held; count = 1 + the kmaps held; a kmap sleeps
// only when the pool is really full; a kmap that returned {blocked: true} completes (its
// task's lastResult gets {addr}) once slots are freed by kunmap and the pool wraps.
import fc from 'fast-check';
import t from 'tap';
import { checkPool } from './fixtures/checks.js';
import { arbConfig, arbIntents, fail, run } from './fixtures/driver.js';
import { assertProperty } from './fixtures/harness.js';

const POOL_WEIGHTS = { pool_kmap: 30, pool_kunmap: 8, spawn: 10, map_atomic: 1, preempt_disable: 0, irq_disable: 0, sleep: 1, setaffinity: 1 };

t.test('property 8: pool invariants, and every blocked kmap completes', (t) => {
  let blocked = 0;
  let completedInRun = 0;
  let completedInDrain = 0;
  let wraps = 0;
  assertProperty(
    t,
    fc.property(arbConfig({ poolOnly: true }), arbIntents({ min: 50, max: 300, weights: POOL_WEIGHTS }), (cfg, intents) => {
      const d = run(cfg, intents, {
        onStep: (d, s) => {
          checkPool(d, s);
          for (const e of s.out?.events ?? []) {
            if (e.type === 'pkmap_wait') blocked++;
            if (e.type === 'pkmap_flush' && e.freed.length > 0) wraps++;
          }
        },
      });
      const pendingBefore = [...d.shadow.values()].filter((s) => s.pendingPool !== null).length;
      d.onStep = (s) => checkPool(d, s);
      const left = d.drain();
      if (left.length > 0) fail(`blocked kmap of task(s) ${left.join(', ')} never completed after every pool page was released`);
      completedInDrain += pendingBefore;
      completedInRun += d.steps > 0 ? 0 : 0;
    }),
    1200,
    0x5eed08,
  );
  t.ok(blocked > 100, `kmaps that slept on a full pool: ${blocked}`);
  t.ok(completedInDrain > 20, `blocked kmaps completed in the final drain: ${completedInDrain}`);
  t.ok(wraps > 100, `flushes that freed slots: ${wraps}`);
  t.end();
});
