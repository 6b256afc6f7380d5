// Property 7 (issue 2, contract section 5): refused ops -- malformed ones (InvalidOpError
// naming the field) and ones the state cannot take (OpError with the contract's code) --
// leave JSON.stringify(state()) unchanged, interleaved at random points of valid runs.
import fc from 'fast-check';
import t from 'tap';
import { arbConfig, arbIntents, run } from './fixtures/driver.js';
import { assertProperty } from './fixtures/harness.js';

t.test('property 7: refused ops leave the state unchanged', (t) => {
  const kinds = new Map<string, number>();
  assertProperty(
    t,
    fc.property(arbConfig(), arbIntents({ min: 50, max: 300, garbage: 12 }), (cfg, intents) => {
      const d = run(cfg, intents);
      for (const [k, n] of d.refusals) kinds.set(k, (kinds.get(k) ?? 0) + n);
    }),
    1000,
    0x5eed07,
  );
  const seen = [...kinds.keys()].sort();
  for (const code of ['invalid', 'not_running', 'task_blocked', 'task_dead', 'no_such_task', 'no_such_mapping', 'not_in_irq', 'in_irq', 'not_runnable', 'not_allowed'])
    t.ok(kinds.has(code), `refusal ${code} exercised (${kinds.get(code) ?? 0} times)`);
  t.comment(`refusals seen: ${seen.map((k) => `${k}=${kinds.get(k)}`).join(' ')}`);
  t.end();
});
