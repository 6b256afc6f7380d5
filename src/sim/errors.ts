/**
 * The model's three kinds of refusal. Kernel diagnostics (WARN, BUG, ...) are NOT errors:
 * they are what the simulation is for and come back as `diagnostic` events.
 */

/** Bad input: names the offending field and the rule it broke (HTTP 400). */
export class ValidationError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`)
  }
}

/** An invalid machine config (contract section 1). */
export class ConfigError extends ValidationError {
  override name = 'ConfigError'
}

/** A malformed op: unknown op name, missing or mistyped field. */
export class InvalidOpError extends ValidationError {
  override name = 'InvalidOpError'
}

/** A well-formed op that the machine's current state cannot take (HTTP 409). */
export class OpError extends Error {
  override name = 'OpError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}
