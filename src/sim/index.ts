/**
 * kmaplab's kernel model: a deterministic, I/O-free simulation of the Linux kmap_local,
 * kmap_atomic and kmap machinery on x86 (contract section 1).
 */
export { createMachine, Machine, type ApplyResult } from './machine.js'
export { ConfigError, InvalidOpError, OpError, ValidationError } from './errors.js'
export type { EffectiveConfig, MachineConfigInput } from './config.js'
export { KERNEL_VERSIONS, type KernelVersion } from './version.js'
export { OP_NAMES, type OpName } from './ops.js'
export type { SimEvent, Diagnostic } from './kernel.js'
export type { State } from './state.js'
export type { Result } from './handlers.js'
export { restoreMachine, snapshotMachine, SnapshotError, SNAPSHOT_FORMAT } from './snapshot.js'
