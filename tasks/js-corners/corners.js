// `js-corners`: TEST ONLY. What the JavaScript SDK and engine do inside the sandbox, as the
// input asks: `"random"` answers the engine's random sources (seeded per unit by the host),
// `"json"` writes the SDK's JSON corner cases, `"task-error"`, `"bug"` and `"not-bytes"` fail
// in the ways a task can. Checked by the client's `js_task` tests.

import { TaskError, float, task, taskJson } from '../../task-sdk/js/index.js';

const json = taskJson((request) => {
  switch (request) {
    case 'random':
      return {
        math_random: [Math.random(), Math.random()],
        get_random_values: Array.from(crypto.getRandomValues(new Uint8Array(8))),
      };
    case 'json':
      return {
        integers: [0, -0, 9007199254740991, -9007199254740991, (1n << 64n) - 1n],
        floats: [float(5), float(-0), 0.1, 1e21, 1e-7, 9007199254740992, 2 ** 70, NaN],
        text: 'quote " backslash \\ slash / controls \u0001\u001f\n\t\b\f del \u007f é 日本 😀',
        '1': 'integer-like keys come first in a JavaScript object',
        ordered: new Map([
          ['b', 1],
          ['a', 2],
        ]),
        skipped: undefined,
      };
    case 'task-error':
      throw new TaskError('TWSE: no data');
    case 'bug':
      return request.missing.field;
    default:
      throw new TaskError(`unknown case ${JSON.stringify(request)}`);
  }
});

const bytesTask = task(() => 'a string, not bytes');

export function run(input) {
  // `not-bytes` is checked before JSON, as a raw-bytes task would see it.
  return new TextDecoder().decode(input) === 'not-bytes' ? bytesTask(input) : json(input);
}
