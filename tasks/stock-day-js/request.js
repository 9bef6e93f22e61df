// The task input and the TWSE URL it maps to (`tasks/stock-day/src/request.rs`).

import { TaskError } from '../../task-sdk/js/index.js';
import { RUST_WHITESPACE, debug } from './rust_text.js';

/** Where the report is fetched from when the input names no `source`. */
const DEFAULT_SOURCE = 'https://www.twse.com.tw';

const FIELDS = ['stock_id', 'year', 'month', 'source', 'all_days'];

function invalidJson(message) {
  return new TaskError(`invalid input JSON: ${message}`);
}

/** serde's `Unexpected` wording for a JSON value of the wrong type. */
function describe(value) {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return `boolean \`${value}\``;
  // `JSON.parse` reads `5.0` as 5: such a number reads as an integer here, where serde would
  // call it a floating point number.
  if (typeof value === 'number') {
    return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
  }
  if (typeof value === 'string') return `string ${debug(value)}`;
  if (Array.isArray(value)) return 'sequence';
  return 'map';
}

function integer(document, name, maximum, rustType) {
  const value = document[name];
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw invalidJson(`invalid type: ${describe(value)}, expected ${rustType}`);
  }
  if (value < 0 || value > maximum) {
    throw invalidJson(`invalid value: integer \`${value}\`, expected ${rustType}`);
  }
  return value;
}

/**
 * Reads the input document as the Rust task's serde `Request`, then validates it:
 * `{"stock_id":"2356","year":2016,"month":5}` plus optional `source` and `all_days`.
 * @returns {{stockId: string, year: number, month: number, source: string | null, allDays: boolean}}
 */
export function readRequest(document) {
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw invalidJson(`invalid type: ${describe(document)}, expected struct Request`);
  }
  for (const name of Object.keys(document)) {
    if (!FIELDS.includes(name)) {
      const expected = FIELDS.map((f) => `\`${f}\``).join(', ');
      throw invalidJson(`unknown field \`${name}\`, expected one of ${expected}`);
    }
  }
  for (const name of FIELDS.slice(0, 3)) {
    if (!(name in document)) {
      throw invalidJson(`missing field \`${name}\``);
    }
  }
  const stockId = document.stock_id;
  if (typeof stockId !== 'string') {
    throw invalidJson(`invalid type: ${describe(stockId)}, expected a string`);
  }
  const source = document.source ?? null;
  if (source !== null && typeof source !== 'string') {
    throw invalidJson(`invalid type: ${describe(source)}, expected a string`);
  }
  const allDays = document.all_days ?? false;
  if (typeof allDays !== 'boolean') {
    throw invalidJson(`invalid type: ${describe(allDays)}, expected a boolean`);
  }
  const request = {
    stockId,
    year: integer(document, 'year', 0xffff, 'u16'),
    month: integer(document, 'month', 0xff, 'u8'),
    source,
    allDays,
  };
  validate(request);
  return request;
}

/** Checks the fields that end up in the URL, so no input can change its shape. */
function validate({ stockId, year, month, source }) {
  if (!/^[A-Za-z0-9]{1,12}$/.test(stockId)) {
    throw new TaskError(
      `invalid input: stock_id ${debug(stockId)} must be 1 to 12 ASCII letters or digits`,
    );
  }
  if (year < 1000 || year > 9999) {
    throw new TaskError(`invalid input: year ${year} must have four digits`);
  }
  if (month < 1 || month > 12) {
    throw new TaskError(`invalid input: month ${month} must be 1 to 12`);
  }
  if (source !== null) {
    const scheme = ['https://', 'http://'].find((s) => source.startsWith(s));
    const rest = scheme === undefined ? '' : source.slice(scheme.length);
    if (!rest || rest.includes('?') || rest.includes('#') || [...rest].some((c) => RUST_WHITESPACE.includes(c))) {
      throw new TaskError(
        `invalid input: source ${debug(source)} must be an http(s) base URL without query or fragment`,
      );
    }
  }
}

/** The STOCK_DAY report URL for this stock and month. */
export function reportUrl({ stockId, year, month, source }) {
  const base = (source ?? DEFAULT_SOURCE).replace(/\/+$/, '');
  const date = `${String(year).padStart(4, '0')}${String(month).padStart(2, '0')}01`;
  return `${base}/rwd/zh/afterTrading/STOCK_DAY?date=${date}&stockNo=${stockId}&response=json`;
}
