// `stock-day-js`: the TWSE crawler of `tasks/stock-day` written in JavaScript.
//
// Same input, same output bytes and same error messages as the Rust task (see
// `tasks/stock-day/src/lib.rs`): `{"stock_id":"2356","year":2016,"month":5}`, optionally with
// `"source"` (base URL of a TWSE-compatible server) and `"all_days": true`; the answer is the
// month's last trading day (or every day) in the original crawler's column order.
//
// Only the wording of malformed-input errors differs: the Rust task quotes serde's message with
// its line and column.

import { TaskError, httpGet, log, progress, taskJson } from '../../task-sdk/js/index.js';
import { readRequest, reportUrl } from './request.js';
import { parseAnswer } from './twse.js';

/** TWSE answers the JSON report to any client; saying who we are is polite. */
const REQUEST_HEADERS = [
  ['Accept', 'application/json'],
  ['User-Agent', 'musketeer-stock-day/0.1'],
];

export const run = taskJson((document) => {
  const request = readRequest(document);
  const url = reportUrl(request);
  log(`GET ${url}`);
  let response;
  try {
    response = httpGet(url, REQUEST_HEADERS);
  } catch (error) {
    throw new TaskError(`fetching ${url}: ${error.message}`);
  }
  if (response.status !== 200) {
    throw new TaskError(`HTTP ${response.status} from ${url}`);
  }
  const rows = parseAnswer(request.stockId, response.body);
  progress(1.0);
  // `parseAnswer` never returns an empty list.
  return request.allDays ? rows : rows.at(-1);
});
