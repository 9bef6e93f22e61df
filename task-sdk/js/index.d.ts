// Types of the musketeer task SDK for JavaScript (`index.js`); see docs/task-author.md,
// "Tasks in JavaScript".

/** The `run` export componentize-js binds to the world's `run: func(list<u8>) -> result<list<u8>, string>`. */
export type Run = (input: Uint8Array) => Uint8Array;

/** A task-level error: the run ends with its message as the error. */
export class TaskError extends Error {
  constructor(message: string);
}

/** Invalid input JSON or an output JSON cannot hold; its message is the run's error. */
export class JsonError extends Error {
  constructor(message: string);
}

/** Makes `fn(input) => output` (bytes) the task: `export const run = task(fn)`. */
export function task(fn: (input: Uint8Array) => Uint8Array): Run;

/** Makes `fn(request) => result` (JSON in and out, written as serde_json writes it) the task. */
export function taskJson(fn: (request: any) => unknown): Run;

/** The run's error message for a thrown value. */
export function errorMessage(error: unknown): string;

/** A number written as an f64 (`5.0`, `-0.0`), as a Rust `f64` field is. */
export class Float {
  constructor(value: number);
  readonly value: number;
}

/** Marks `value` as an f64 for `toJson`; `null` stays `null`. */
export function float(value: number): Float;
export function float(value: null): null;
export function float(value: number | null): Float | null;

/** Values `toJson` writes: plain objects and `Map`s with string keys, arrays, strings,
 *  booleans, `null`, numbers (safe integers as integers, others as f64), `Float` and BigInt. */
export type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Float
  | JsonValue[]
  | Map<string, JsonValue>
  | { [key: string]: JsonValue | undefined };

/** Decodes the task input as JSON (error text `invalid input JSON: ...`). */
export function parseJson(data: Uint8Array): any;

/** Encodes `value` as compact JSON, as serde_json's `to_vec` would. */
export function toJson(value: JsonValue): Uint8Array;

/** A number as serde_json writes an f64 (`null` when not finite). */
export function formatFloat(value: number): string;

/** A completed HTTP exchange; any status counts as completed, including 4xx and 5xx. */
export class HttpResponse {
  readonly status: number;
  readonly headers: [string, string][];
  readonly body: Uint8Array;
  isSuccess(): boolean;
  header(name: string): string | undefined;
  text(): string;
}

/** Why the host did not complete a GET (the WIT `http-error` variant's case and detail). */
export class HttpError extends Error {
  readonly kind: 'denied' | 'timeout' | 'too-large' | 'too-many-requests' | 'failed';
  readonly detail: string | bigint | undefined;
}

/** GETs `url` through the host (allowlisted, capped, budgeted); throws an `HttpError`. */
export function httpGet(url: string, headers?: [string, string][]): HttpResponse;

/** Reports progress as a fraction in [0, 1]. */
export function progress(fraction: number): void;

/** Adds one line to the run's log (the host caps its size). */
export function log(line: string): void;
