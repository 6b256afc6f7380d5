/**
 * Kernel virtual addresses. x86_64 addresses do not fit a JS number (2^53), so the model
 * keeps an address as its virtual page number (vpn = addr >> PAGE_SHIFT, at most 52 bits)
 * plus the offset inside the page; both are exact numbers. Outside the model an address
 * is a lowercase hex string with `0x` and no padding (contract).
 */
import { ValidationError } from './errors.js'

export const PAGE_SIZE = 4096

export interface VAddr {
  vpn: number
  off: number
}

/** Formats page `vpn` plus `off` as the contract's hex string. */
export function hexAddr(vpn: number, off = 0): string {
  if (vpn === 0) return '0x' + off.toString(16)
  return '0x' + vpn.toString(16) + off.toString(16).padStart(3, '0')
}

/** Hex string of a plain number (pfns in messages, physical addresses below 2^53). */
export function hex(n: number): string {
  return '0x' + n.toString(16)
}

const HEX_RE = /^0x[0-9a-fA-F]{1,16}$/

/**
 * Value of "0x" plus 1-13 hex digits (exact in a double), or -1. Parsed by hand in one pass
 * that also validates: this runs on every unmap, and is several times faster than Number().
 */
function shortHex(s: string): number {
  if (s.length < 3 || s.charCodeAt(0) !== 48 || s.charCodeAt(1) !== 120) return -1
  let n = 0
  for (let i = 2; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1
    if (d < 0) return -1
    n = n * 16 + d
  }
  return n
}

/**
 * The string shortHex parsed last, and its value. An unmap names the address its map
 * returned, so the same few strings come back op after op; comparing with the last one
 * costs less than parsing it again.
 */
let lastHex = ''
let lastHexValue = -1

function shortHexMemo(s: string): number {
  if (s !== lastHex) {
    lastHexValue = shortHex(s)
    lastHex = s
  }
  return lastHexValue
}

/**
 * Parses an address given as a hex string (or a non-negative safe integer) that must be
 * below 2^bits. Throws `make(field, rule)` otherwise.
 */
export function parseAddr(
  value: unknown,
  bits: 32 | 64,
  field: string,
  make: new (field: string, rule: string) => ValidationError,
): VAddr {
  if (typeof value === 'string' && value.length > 15) {
    // More than 13 hex digits (52 bits) is past a double's exact range: go through BigInt.
    if (!HEX_RE.test(value)) throw new make(field, 'must be an address: a hex string such as "0xfff9b000"')
    const big = BigInt(value)
    if (big >= 1n << BigInt(bits)) throw new make(field, `must be below 2^${bits} on this architecture`)
    return { vpn: Number(big >> 12n), off: Number(big & 0xfffn) }
  }
  const n = typeof value === 'string' ? shortHexMemo(value) : typeof value === 'number' && Number.isSafeInteger(value) ? value : -1
  if (n < 0) throw new make(field, 'must be an address: a hex string such as "0xfff9b000"')
  if (bits === 32 && n > 0xffffffff) throw new make(field, 'must be below 2^32 on this architecture')
  // Division, not %: fmod on a double above 2^31 is many times slower, and this is per unmap.
  const vpn = Math.floor(n / PAGE_SIZE)
  return { vpn, off: n - vpn * PAGE_SIZE }
}

/** A physical address or size: hex string or safe integer, below 2^52. */
export function parsePhys(
  value: unknown,
  field: string,
  make: new (field: string, rule: string) => ValidationError,
): number {
  let n: number
  if (typeof value === 'string' && HEX_RE.test(value)) n = Number(BigInt(value))
  else if (typeof value === 'number' && Number.isSafeInteger(value)) n = value
  else throw new make(field, 'must be a non-negative integer or a hex string')
  if (n < 0 || n >= 2 ** 52) throw new make(field, 'must be between 0 and 2^52')
  return n
}
