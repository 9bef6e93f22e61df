// Parsing of TWSE's STOCK_DAY answer into day rows (`tasks/stock-day/src/twse.rs`).
//
// Every cell is a string: counts carry thousands separators (`"5,614,182"`), prices two
// decimals (`"1,085.00"`), the change a sign (`"+9.50"`, `" 0.00"`) or an `X` prefix on
// ex-rights days (`"X0.00"`), and a day without trades shows `"--"`. A row is an object whose
// keys are the original crawler's columns in its order, as the Rust task's `DayRow` serializes:
// counts as BigInt (a u64), prices and the change as `float` (an f64).

import { TaskError, float } from '../../task-sdk/js/index.js';
import { debug, isAsciiDigits, trim, trimStart } from './rust_text.js';

/** The columns after the stock id, in the order of the original crawler and of TWSE's answer. */
const COLUMNS = ['日期', '成交股數', '成交金額', '開盤價', '最高價', '最低價', '收盤價', '漲跌價差', '成交筆數'];

const U64_MAX = (1n << 64n) - 1n;

/** A cell that does not parse; the caller names the column and the day. */
class Malformed extends Error {}

/** Parses a STOCK_DAY answer into its rows, oldest first (never an empty list). */
export function parseAnswer(stockId, body) {
  const answer = readAnswer(body);
  if (answer.stat !== 'OK') {
    throw new TaskError(`TWSE: ${answer.stat}`);
  }
  const index = columnIndex(answer.fields ?? null);
  const data = answer.data ?? [];
  if (data.length === 0) {
    throw new TaskError('TWSE answer has no rows');
  }
  return data.map((row, n) => parseRow(stockId, index, n + 1, row));
}

/** The answer's `stat`, `fields` and `data`, type-checked as the Rust task's serde. */
function readAnswer(body) {
  const malformed = (reason) => new TaskError(`TWSE answer is not the expected JSON: ${reason}`);
  let answer;
  try {
    answer = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (error) {
    throw malformed(error.message);
  }
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) {
    throw malformed('expected an object');
  }
  if (!('stat' in answer)) {
    throw malformed('missing field `stat`');
  }
  if (typeof answer.stat !== 'string') {
    throw malformed('`stat` is not a string');
  }
  const strings = (value) => Array.isArray(value) && value.every((v) => typeof v === 'string');
  if ((answer.fields ?? null) !== null && !strings(answer.fields)) {
    throw malformed('`fields` is not a list of strings');
  }
  if ((answer.data ?? null) !== null && !(Array.isArray(answer.data) && answer.data.every(strings))) {
    throw malformed('`data` is not a list of lists of strings');
  }
  return answer;
}

/** Where each column sits: by name when the answer lists its fields, else by position. */
function columnIndex(fields) {
  if (fields === null) {
    return COLUMNS.map((_, n) => n);
  }
  return COLUMNS.map((name) => {
    const found = fields.findIndex((field) => trim(field) === name);
    if (found < 0) {
      throw new TaskError(`TWSE answer lacks the ${name} column`);
    }
    return found;
  });
}

function parseRow(stockId, index, number, row) {
  const needed = Math.max(...index) + 1;
  if (row.length < needed || row.length > Math.max(needed, 10)) {
    throw new TaskError(`TWSE answer: row ${number} has ${row.length} cells`);
  }
  const cell = (column) => row[index[column]];
  const date = trim(cell(0));
  const parsed = (column, parse) => {
    try {
      return parse(cell(column));
    } catch (error) {
      if (!(error instanceof Malformed)) throw error;
      throw new TaskError(`TWSE answer: cannot parse ${COLUMNS[column]} ${debug(cell(column))} on ${date}`);
    }
  };
  // The values are checked in the Rust `DayRow`'s field order, so the first bad cell reported
  // is the same one.
  return {
    個股代號: stockId,
    日期: date,
    成交股數: parsed(1, count),
    成交金額: parsed(2, count),
    開盤價: parsed(3, price),
    最高價: parsed(4, price),
    最低價: parsed(5, price),
    收盤價: parsed(6, price),
    漲跌價差: parsed(7, change),
    成交筆數: parsed(8, count),
  };
}

/** `"5,614,182"` -> 5614182n; `"--"` -> null. A BigInt, as counts may pass 2^53. */
function count(text) {
  const cell = trim(text);
  if (cell === '--') return null;
  const digits = cell.replaceAll(',', '');
  if (!digits || !isAsciiDigits(digits) || BigInt(digits) > U64_MAX) {
    throw new Malformed();
  }
  return BigInt(digits);
}

/** `"1,085.50"` -> 1085.5; only plain decimals (no exponent, `Infinity` or `NaN`). */
function price(text) {
  const cell = trim(text);
  if (cell === '--') return null;
  return float(decimal(cell));
}

/** `"+9.50"` -> 9.5, `"-2.00"` -> -2.0, `"X0.00"` -> 0.0, `"--"` -> null. */
function change(text) {
  let cell = trim(text);
  if (cell === '--') return null;
  // `X` marks an ex-rights / ex-dividend day; the number after it is the change.
  if (cell.startsWith('X')) {
    cell = trimStart(cell.slice(1));
  }
  if (cell === '--') return null;
  const negative = cell.startsWith('-');
  const magnitude = cell.startsWith('+') || negative ? cell.slice(1) : cell;
  const value = decimal(magnitude);
  // Never `-0.0`: a zero change is written ` 0.00` or `-0.00` for the same day.
  return float(negative && value !== 0 ? -value : value);
}

function decimal(text) {
  const plain = text.replaceAll(',', '');
  const point = plain.indexOf('.');
  const whole = point < 0 ? plain : plain.slice(0, point);
  const fraction = point < 0 ? '' : plain.slice(point + 1);
  if (!whole || !isAsciiDigits(whole) || !isAsciiDigits(fraction) || (point >= 0 && !fraction)) {
    throw new Malformed();
  }
  // `Number` rounds a decimal correctly, as Rust's `parse` does.
  return Number(plain);
}
