// The task's `run` export: a plain function wrapped so that every failure becomes the run's
// error message, never a trap.

import { JsonError, parseJson, toJson } from './json.js';

/** A task-level error: the run ends with its message as the error. */
export class TaskError extends Error {
  constructor(message) {
    super(message);
    this.name = 'TaskError';
  }
}

/**
 * The run's error message for a thrown value: a `TaskError`'s or `JsonError`'s own message,
 * `<Name>: <message>` for any other error (a bug in the task), as the Python SDK words it.
 * @param {unknown} error
 * @returns {string}
 */
export function errorMessage(error) {
  if (error instanceof TaskError || error instanceof JsonError) {
    return error.message;
  }
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`;
  }
  return `uncaught ${typeof error}: ${String(error)}`;
}

/**
 * Makes `fn(input: Uint8Array) => Uint8Array` a `run` export: `export const run = task(fn)`.
 * The component model carries a thrown string as the `err` of `run`'s result.
 * @param {(input: Uint8Array) => Uint8Array} fn
 * @returns {(input: Uint8Array) => Uint8Array}
 */
export function task(fn) {
  return (input) => {
    let output;
    try {
      output = fn(input);
    } catch (error) {
      throw errorMessage(error);
    }
    if (!(output instanceof Uint8Array)) {
      const kind = output === null ? 'null' : (output?.constructor?.name ?? typeof output);
      throw `a task() function must return a Uint8Array, not ${kind}`;
    }
    return output;
  };
}

/**
 * Makes `fn(request) => result` a `run` export with JSON input and output:
 * `export const run = taskJson(fn)`. A malformed input ends the run with
 * `invalid input JSON: ...`, a result JSON cannot hold with `cannot encode output as JSON: ...`
 * (the Rust SDK's messages); the output is written as serde_json writes it (see `json.js`).
 * @param {(request: any) => unknown} fn
 * @returns {(input: Uint8Array) => Uint8Array}
 */
export function taskJson(fn) {
  return task((input) => toJson(fn(parseJson(input))));
}
