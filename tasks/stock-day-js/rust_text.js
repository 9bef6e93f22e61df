// Rust's string conventions, so that error messages read as the Rust task's do.

// Unicode White_Space, what Rust's `str::trim` removes (JavaScript's `trim` also removes
// U+FEFF, which Rust keeps, and keeps U+0085, which Rust removes).
export const RUST_WHITESPACE =
  '\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007' +
  '\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

const LEADING = new RegExp(`^[${RUST_WHITESPACE}]+`);
const TRAILING = new RegExp(`[${RUST_WHITESPACE}]+$`);

/** Rust's `str::trim_start`. */
export function trimStart(text) {
  return text.replace(LEADING, '');
}

/** Rust's `str::trim`. */
export function trim(text) {
  return trimStart(text).replace(TRAILING, '');
}

/** Every character is 0-9, and there may be none (as Python's port and Rust's `all`). */
export function isAsciiDigits(text) {
  return /^[0-9]*$/.test(text);
}

const DEBUG_ESCAPES = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\0': '\\0' };

/** Rust's `{:?}` of a string: quoted, with quotes, backslashes and controls escaped. */
export function debug(text) {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/["\\\u0000-\u001f\u007f]/g, (c) =>
    DEBUG_ESCAPES[c] ?? `\\u{${c.charCodeAt(0).toString(16)}}`,
  );
  return `"${escaped}"`;
}
