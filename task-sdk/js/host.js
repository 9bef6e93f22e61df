// Wrappers over the `musketeer:task/host` imports (the same API as the Rust and Python SDKs').
// componentize-js binds the import below from `task-sdk/wit` when it builds the module.

import {
  httpGet as witHttpGet,
  log as witLog,
  progress as witProgress,
} from 'musketeer:task/host@0.1.0';

/** A completed HTTP exchange; any status counts as completed, including 4xx and 5xx. */
export class HttpResponse {
  /**
   * @param {number} status
   * @param {[string, string][]} headers
   * @param {Uint8Array} body
   */
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** True for a 2xx status. */
  isSuccess() {
    return this.status >= 200 && this.status < 300;
  }

  /**
   * The first header with this name, compared case-insensitively.
   * @param {string} name
   * @returns {string | undefined}
   */
  header(name) {
    const wanted = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === wanted)?.[1];
  }

  /** The body as UTF-8 text (throws a `TypeError` if it is not UTF-8). */
  text() {
    return new TextDecoder('utf-8', { fatal: true }).decode(this.body);
  }
}

/**
 * Why the host did not complete a GET; the message reads as the Rust SDK's `Display`.
 * `kind` is one of `denied`, `timeout`, `too-large`, `too-many-requests`, `failed` (the WIT
 * variant's cases); `detail` is the reason or the byte cap (a BigInt), if any.
 */
export class HttpError extends Error {
  /**
   * @param {string} kind
   * @param {string | bigint | undefined} detail
   */
  constructor(kind, detail) {
    super(describe(kind, detail));
    this.name = 'HttpError';
    this.kind = kind;
    this.detail = detail;
  }
}

function describe(kind, detail) {
  switch (kind) {
    case 'denied':
      return `request denied by the host: ${detail}`;
    case 'timeout':
      return 'request timed out';
    case 'too-large':
      return `response larger than the ${detail}-byte cap`;
    case 'too-many-requests':
      return 'request budget for this run used up';
    default:
      return `request failed: ${detail}`;
  }
}

/**
 * GETs `url` through the host with the given request headers. The host allows only URLs on the
 * manifest's allowlist, follows redirects (re-checking each hop) and enforces a per-request
 * timeout, a response size cap and a per-run request budget. Throws an `HttpError` when the
 * GET does not complete.
 * @param {string} url
 * @param {[string, string][]} [headers]
 * @returns {HttpResponse}
 */
export function httpGet(url, headers = []) {
  let response;
  try {
    response = witHttpGet(url, headers);
  } catch (error) {
    // The bindings throw the `err` case of a result as an error carrying it in `payload`.
    const payload = error?.payload;
    if (payload && typeof payload.tag === 'string') {
      throw new HttpError(payload.tag, payload.val);
    }
    throw new HttpError('failed', `unexpected host error: ${String(error)}`);
  }
  return new HttpResponse(response.status, response.headers, response.body);
}

/**
 * Reports progress as a fraction in [0, 1]; the host may ignore out-of-range values.
 * @param {number} fraction
 */
export function progress(fraction) {
  witProgress(fraction);
}

/**
 * Adds one line to the run's log (the host caps its size).
 * @param {string} line
 */
export function log(line) {
  witLog(line);
}
