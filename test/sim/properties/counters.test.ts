// Property 9 (issues 2 and 3, spec 3.2, 5.3, 6): counters never go negative in valid
// sequences and move exactly by the spec's per-call deltas; kmapIdx is a multiple of KM_INCR
// on x86_32; each CPU's nrPinned equals the number of non-dead tasks on it with
// migrationDisabled > 0 (the idle task included while an interrupt on it holds a map).
import fc from 'fast-check';
import t from 'tap';
import { checkCounters } from './fixtures/checks.js';
import { arbConfig, arbIntents, run } from './fixtures/driver.js';
import { assertProperty } from './fixtures/harness.js';

t.test('property 9: counters non-negative, per-call deltas, KM_INCR steps, nrPinned', (t) => {
  let pinnedCpuStates = 0;
  assertProperty(
    t,
    fc.property(
      arbConfig(),
      arbIntents({ min: 50, max: 300, weights: { migrate_disable: 5, migrate_enable: 6, setaffinity: 4, sleep: 4, wake: 5 } }),
      (cfg, intents) => {
        run(cfg, intents, {
          onStep: (d, s) => {
            checkCounters(d, s);
            for (const c of s.next.cpus) if (c.nrPinned > 0) pinnedCpuStates++;
          },
        });
      },
    ),
    1000,
    0x5eed09,
  );
  t.ok(pinnedCpuStates > 1000, `CPU states with nrPinned > 0: ${pinnedCpuStates}`);
  t.end();
});
