// JSON in and out, written byte for byte as the Rust SDK (serde_json) writes it.
//
// `JSON.stringify` differs from serde_json where a port of a Rust task would notice:
// - Rust tells integers from floats by type (`5` for a u64, `5.0` for an f64); JavaScript has
//   one number type. Here a plain number that is a safe integer is written as an integer, any
//   other number as serde_json writes an f64; `float(x)` marks a value as an f64 (`float(5)` is
//   `5.0`, `float(-0)` is `-0.0`), and a BigInt is an integer of any size (a u64 beyond 2^53).
// - Float layout: the digits are the same (both write the shortest that round-trip) but
//   `JSON.stringify` writes `1e+21` and `1e-7` where serde_json writes its own layout; non-finite
//   numbers are `null` in both.
// - Strings: serde_json escapes only `"`, `\` and U+0000..U+001F (not `/`, not U+007F, not
//   non-ASCII); a lone surrogate cannot be a Rust `String`, so it is an error here, where
//   `JSON.stringify` would write `\udXXX`.
// `tasks/artifacts/tests/js_sdk.rs` compares this writer with serde_json.

/** Invalid input JSON or an output JSON cannot hold; its message is the run's error. */
export class JsonError extends Error {
  constructor(message) {
    super(message);
    this.name = 'JsonError';
  }
}

/** A number to be written as an f64 (`5.0`, not `5`), as a Rust `f64` field is. */
export class Float {
  /** @param {number} value */
  constructor(value) {
    this.value = value;
  }
}

/**
 * Marks `value` as an f64 for `toJson`; `null` stays `null` (a Rust `Option<f64>`).
 * @param {number | null} value
 * @returns {Float | null}
 */
export function float(value) {
  return value === null ? null : new Float(value);
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/**
 * Decodes the task input as JSON (error text `invalid input JSON: ...`).
 * @param {Uint8Array} data
 */
export function parseJson(data) {
  let text;
  try {
    text = decoder.decode(data);
  } catch {
    throw new JsonError('invalid input JSON: not UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new JsonError(`invalid input JSON: ${error.message}`);
  }
}

/**
 * Encodes `value` as compact JSON, as serde_json's `to_vec` would (error text
 * `cannot encode output as JSON: ...`). Objects keep their own key order, except that
 * JavaScript lists integer-like keys ("1") first: use a `Map` to keep any order.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function toJson(value) {
  const parts = [];
  write(value, parts, new Set());
  return encoder.encode(parts.join(''));
}

function fail(reason) {
  return new JsonError(`cannot encode output as JSON: ${reason}`);
}

function write(value, out, open) {
  if (value === null) {
    out.push('null');
  } else if (value === true) {
    out.push('true');
  } else if (value === false) {
    out.push('false');
  } else if (typeof value === 'number') {
    out.push(Number.isSafeInteger(value) ? String(value === 0 ? 0 : value) : formatFloat(value));
  } else if (value instanceof Float) {
    if (typeof value.value !== 'number') {
      throw fail(`float() of a ${typeof value.value}`);
    }
    out.push(formatFloat(value.value));
  } else if (typeof value === 'bigint') {
    out.push(value.toString());
  } else if (typeof value === 'string') {
    out.push(quote(value));
  } else if (Array.isArray(value)) {
    enter(value, open);
    out.push('[');
    value.forEach((item, n) => {
      if (n) out.push(',');
      write(item === undefined ? null : item, out, open);
    });
    out.push(']');
    open.delete(value);
  } else if (value instanceof Map) {
    enter(value, open);
    writeEntries(value.entries(), out, open);
    open.delete(value);
  } else if (typeof value === 'object' && isPlainObject(value)) {
    enter(value, open);
    writeEntries(Object.entries(value), out, open);
    open.delete(value);
  } else {
    const kind = typeof value === 'object' ? value.constructor?.name ?? 'object' : typeof value;
    throw fail(`${kind} is not a JSON type`);
  }
}

function isPlainObject(value) {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function enter(value, open) {
  if (open.has(value)) {
    throw fail('the value contains itself');
  }
  open.add(value);
}

function writeEntries(entries, out, open) {
  out.push('{');
  let first = true;
  for (const [key, item] of entries) {
    if (typeof key !== 'string') {
      throw fail(`key ${String(key)} is not a string`);
    }
    // `JSON.stringify` skips undefined members; so does this (a Rust `skip_serializing_if`).
    if (item === undefined) continue;
    if (!first) out.push(',');
    first = false;
    out.push(quote(key), ':');
    write(item, out, open);
  }
  out.push('}');
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SHORT_ESCAPES = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A string as serde_json quotes it: `"`, `\` and U+0000..U+001F escaped, nothing else. */
function quote(text) {
  if (LONE_SURROGATE.test(text)) {
    throw fail('a string holds a lone surrogate (not Unicode text)');
  }
  // eslint-disable-next-line no-control-regex
  return `"${text.replace(/["\\\u0000-\u001f]/g, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/**
 * A number as serde_json writes an f64: the shortest round-tripping digits (JavaScript's own),
 * laid out as serde_json lays them out; `null` when not finite.
 * @param {number} value
 */
export function formatFloat(value) {
  if (!Number.isFinite(value)) {
    return 'null';
  }
  const sign = value < 0 || Object.is(value, -0) ? '-' : '';
  const [mantissa, exponent = '0'] = Math.abs(value).toString().split('e');
  const [whole, fraction = ''] = mantissa.split('.');
  let digits = (whole + fraction).replace(/^0+/, '') || '0';
  // The decimal exponent of the first significant digit, then the digits before the point
  // when written without an exponent.
  const lead = whole !== '0' ? whole.length : -(fraction.length - fraction.replace(/^0+/, '').length);
  const point = lead + Number(exponent);
  digits = digits.replace(/0+$/, '') || '0';
  if (digits === '0') {
    return `${sign}0.0`;
  }
  const length = digits.length;
  if (length <= point && point <= 16) {
    return `${sign}${digits}${'0'.repeat(point - length)}.0`;
  }
  if (point > 0 && point <= 16) {
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  if (point > -5 && point <= 0) {
    return `${sign}0.${'0'.repeat(-point)}${digits}`;
  }
  // serde_json signs a positive exponent (`1e+16`) but not a negative one (`1e-7`).
  const exp = point - 1;
  const exponentText = exp >= 0 ? `e+${exp}` : `e${exp}`;
  if (length === 1) {
    return `${sign}${digits}${exponentText}`;
  }
  return `${sign}${digits[0]}.${digits.slice(1)}${exponentText}`;
}
