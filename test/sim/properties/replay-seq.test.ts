// Properties 5 and 6 (issue 2, contract sections 1 and 7): replaying the same config and ops
// gives byte-identical results, events and state; seq runs from 1 without gaps,
// state().seq is the last event's, ts never decreases.
import fc from 'fast-check';
import t from 'tap';
import * as sim from '../../../src/sim/index.js';
import { seqChecker } from './fixtures/checks.js';
import { arbConfig, arbIntents, fail, outcome, run } from './fixtures/driver.js';
import { assertProperty } from './fixtures/harness.js';

t.test('property 5: replaying config + ops gives byte-identical results, events and state', (t) => {
  let ops = 0;
  assertProperty(
    t,
    fc.property(arbConfig(), arbIntents({ min: 50, max: 300, garbage: 3 }), (cfg, intents) => {
      const d = run(cfg, intents);
      const finalState = JSON.stringify(d.m.state());
      const m2 = sim.createMachine(JSON.parse(JSON.stringify(cfg)));
      if (JSON.stringify(m2.config) !== JSON.stringify(d.m.config)) fail('effective config differs on replay');
      d.log.forEach((entry, i) => {
        const again = outcome(m2, JSON.parse(JSON.stringify(entry.op)));
        if (again !== entry.outJson) fail(`op #${i} ${JSON.stringify(entry.op)} differs on replay:\nfirst  ${entry.outJson}\nreplay ${again}`);
      });
      const s2 = JSON.stringify(m2.state());
      if (s2 !== finalState) fail(`final state differs on replay:\nfirst  ${finalState}\nreplay ${s2}`);
      ops += d.log.length;
    }),
    500,
    0x5eed05,
  );
  t.ok(ops > 5000, `ops replayed: ${ops}`);
  t.end();
});

t.test('property 6: seq has no gaps, state().seq = last event seq, ts never decreases', (t) => {
  let events = 0;
  assertProperty(
    t,
    fc.property(arbConfig(), arbIntents({ min: 50, max: 300, garbage: 3 }), (cfg, intents) => {
      const check = seqChecker();
      run(cfg, intents, {
        onStep: (d, s) => {
          check(d, s);
          events += s.out?.events.length ?? 0;
        },
      });
    }),
    1000,
    0x5eed06,
  );
  t.ok(events > 20000, `events checked: ${events}`);
  t.end();
});
