// Properties 3 and 4 (issue 2): a migrate-disabled task never changes CPU; an access by the
// owning task through any address it mapped and has not unmapped returns the mapped pfn and
// prot, after any number of switches and interrupts (all unmaps in correct order).
import fc from 'fast-check';
import t from 'tap';
import { checkPinned } from './fixtures/checks.js';
import { arbConfig, arbIntents, run } from './fixtures/driver.js';
import { assertProperty } from './fixtures/harness.js';

t.test('property 3: a task with migrationDisabled > 0 never changes CPU', (t) => {
  let pinnedSteps = 0;
  let affinityMoves = 0;
  assertProperty(
    t,
    fc.property(
      arbConfig(),
      arbIntents({ min: 50, max: 300, weights: { setaffinity: 8, migrate_disable: 6, migrate_enable: 6, switch_to: 10, set_task_cpu: 4, sleep: 5, wake: 6 } }),
      (cfg, intents) => {
        run(cfg, intents, {
          onStep: (d, s) => {
            checkPinned(d, s);
            pinnedSteps += s.prev.tasks.filter((x: { migrationDisabled: number }) => x.migrationDisabled > 0).length;
            for (const e of s.out?.events ?? []) if (e.type === 'migrate') affinityMoves++;
          },
        });
      },
    ),
    1000,
    0x5eed03,
  );
  t.ok(pinnedSteps > 1000, `pinned task-steps observed: ${pinnedSteps}`);
  t.ok(affinityMoves > 50, `migrations that happened meanwhile: ${affinityMoves}`);
  t.end();
});

t.test('property 4: access through a live address returns the mapped pfn and prot', (t) => {
  let checked = 0;
  let afterSwitch = 0;
  assertProperty(
    t,
    fc.property(
      arbConfig(),
      arbIntents({ min: 50, max: 300, weights: { access: 14, irq_access: 4, pool_access: 3, preempt: 12, switch_to: 12, map_atomic: 2, map_atomic_pfn: 1, preempt_disable: 1, irq_disable: 0, sleep: 5, wake: 6 } }),
      (cfg, intents) => {
        const d = run(cfg, intents);
        d.sweepAccess();
        checked += d.accessChecked;
        afterSwitch += d.accessAfterSwitch;
      },
    ),
    1000,
    0x5eed04,
  );
  t.ok(afterSwitch > 200, `accesses checked: ${checked}, through mappings that survived a switch-out: ${afterSwitch}`);
  t.end();
});
