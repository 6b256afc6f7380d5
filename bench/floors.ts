// The regression floors `npm run bench` checks (in both modes; `--quick` exists for this check
// in CI). Each is a floor on the figure's ratio to its same-run baseline, set at about half the
// ratio measured by the full run recorded in the README, so that the noise of a shared 2-core
// machine (runs there have swung by a third) cannot fail CI but a real regression will. The
// two "flat" figures are not halved: a floor of 0.7 on start/end RSS already allows growth of
// 40 % in a run that should show none. Raise a floor when a figure improves for good.
export const FLOORS: Record<string, number> = {
  'sim-pairs': 0.14,
  'sim-switch-heavy': 0.06,
  'sim-pool': 0.04,
  'http-single-op': 0.12,
  // References, not our targets: a floor only catches a measurement that broke.
  'http-single-op-unstored': 0.2,
  'http-durable-minimal': 0.3,
  'http-batch-commit': 0.25,
  // Lazy restore: start-up with 1,000 stored machines must stay close to an empty database's.
  'restart-stored-machines': 0.5,
  'ws-fanout': 0.35,
  'rss-stalled-subscriber': 0.7,
  'rss-per-live-machine': 0.04, // the quick run's 2,000 machines measure ~0.07
}
