/**
 * Kubernetes resource quantities ("100m", "128Mi", "1Gi", "0.5", "2e3") as exact values.
 *
 * Design note: a quantity is parsed to an exact rational (bigint mantissa times powers of ten
 * and two) rather than a float, because the scheduler compares sums of requests against
 * allocatable and `0.1` cores must be exactly 100 millicores, not 100.00000000000001 rounded up
 * to 101. Rounding follows apimachinery's `Quantity.Value()` / `MilliValue()`: up, away from
 * zero for positive values.
 */
import { PontoonError } from '../lib/errors.js';
import type { Quantity } from './types.js';

export class InvalidQuantityError extends PontoonError {}

/** value = mantissa × 10^exponent10 × 2^exponent2 */
interface ExactQuantity {
  mantissa: bigint;
  exponent10: number;
  exponent2: number;
}

const BINARY_SUFFIXES: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const QUANTITY = /^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)$/;
const EXPONENT = /^[eE]([+-]?[0-9]+)$/;

function parseExact(quantity: Quantity): ExactQuantity {
  if (typeof quantity === 'number') {
    if (!Number.isFinite(quantity)) throw new InvalidQuantityError(`failed to parse quantity "${quantity}": not finite`);
    return parseExact(String(quantity));
  }
  const match = QUANTITY.exec(quantity.trim());
  if (!match) throw new InvalidQuantityError(`failed to parse quantity "${quantity}": not a number with an optional suffix`);
  const [, sign = '', number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  let mantissa = BigInt(`${whole}${fraction}` || '0');
  if (sign === '-') mantissa = -mantissa;
  let exponent10 = -fraction.length;
  let exponent2 = 0;
  const binary = BINARY_SUFFIXES[suffix];
  const decimal = DECIMAL_SUFFIXES[suffix];
  if (binary !== undefined) exponent2 = binary;
  else if (decimal !== undefined) exponent10 += decimal;
  else {
    const exponent = EXPONENT.exec(suffix);
    if (!exponent) throw new InvalidQuantityError(`failed to parse quantity "${quantity}": unknown suffix "${suffix}"`);
    exponent10 += Number(exponent[1]);
  }
  return { mantissa, exponent10, exponent2 };
}

/** ceil(q × 10^scale) as a bigint. */
function scaledCeil(q: ExactQuantity, scale: number): bigint {
  const numerator = q.mantissa * 2n ** BigInt(q.exponent2);
  const exponent = q.exponent10 + scale;
  if (exponent >= 0) return numerator * 10n ** BigInt(exponent);
  const divisor = 10n ** BigInt(-exponent);
  const quotient = numerator / divisor;
  // BigInt division truncates toward zero; round positive remainders up as Value() does.
  return numerator % divisor > 0n ? quotient + 1n : quotient;
}

/** The value in base units rounded up: bytes for memory, whole cores for cpu, a count for pods. */
export function quantityValue(quantity: Quantity): number {
  return Number(scaledCeil(parseExact(quantity), 0));
}

/** The value in thousandths rounded up: millicores for cpu ("100m" → 100, "0.5" → 500). */
export function quantityMilliValue(quantity: Quantity): number {
  return Number(scaledCeil(parseExact(quantity), 3));
}

/** True when `text` parses as a quantity. */
export function isQuantity(quantity: Quantity): boolean {
  try {
    parseExact(quantity);
    return true;
  } catch (err) {
    if (err instanceof InvalidQuantityError) return false;
    throw err;
  }
}
