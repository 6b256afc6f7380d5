/** Scenario files (docs/scenarios.md): format, runner, convert-check, and their text reports. */
export { parseScenario, readScenario, toScenario, ScenarioFormatError, type Scenario, type Step, type Expectation } from './format.js'
export { OpRefusal, type Executor, type ExecutorFactory, type Applied } from './executor.js'
export { LocalExecutor, localExecutor } from './local.js'
export { runScenario, SMP_PROCESSOR_ID, type RunReport, type RunOptions, type StepRecord, type Mismatch } from './run.js'
export { convertScenario, CONVERSIONS } from './convert.js'
export { convertCheck, type ConvertReport, type Divergence } from './convert-check.js'
export { formatRun, formatConvertCheck } from './report.js'
