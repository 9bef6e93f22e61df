// Guest-side API for musketeer task modules written in JavaScript (componentize-js).
//
// A musketeer task is a WebAssembly component exporting `run(input) -> result<output, error>`
// (the WIT world in `task-sdk/wit/task.wit`). This package hides the bindings, so a task is a
// plain function exported as `run`:
//
//     import { TaskError, log, taskJson } from '../../task-sdk/js/index.js';
//
//     export const run = taskJson((request) => {
//       if (!('n' in request)) throw new TaskError('invalid input: n is missing');
//       log(`n = ${request.n}`);
//       return { double: 2 * request.n };
//     });
//
// See docs/task-author.md, "Tasks in JavaScript", for building and limits.

export { HttpError, HttpResponse, httpGet, log, progress } from './host.js';
export { Float, JsonError, float, formatFloat, parseJson, toJson } from './json.js';
export { TaskError, errorMessage, task, taskJson } from './task.js';
