/**
 * The `fetch` the generated client sends through: it adds what the contract
 * cannot know.
 *
 * - `Authorization: Bearer` from the session (refreshed when stale; one
 *   refresh and one retry after a 401);
 * - an `Idempotency-Key` on every write that has none, so a retried write is
 *   the same write: every retry of a request reuses its key and its body;
 * - `Retry-After` honoured on 429 and 503, within bounds (`RetryPolicy`):
 *   a wait longer than `maxDelayMs` (e.g. a daily cap) is answered at once;
 * - network failures retried with exponential backoff (writes too: the key
 *   makes that safe).
 */

import { parseRetryAfter } from "./problem.js";
import type { Session } from "./session.js";

export interface RetryPolicy {
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** Longest single wait; a longer `Retry-After` is not waited for. */
  maxDelayMs: number;
  /** Backoff after a network error or a 503 without `Retry-After`. */
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, maxDelayMs: 5_000, baseDelayMs: 250 };

const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Routes that issue credentials: they carry no bearer token. */
const CREDENTIAL_PATHS = ["/api/auth/register", "/api/auth/otp/", "/api/auth/telegram", "/api/auth/refresh"];

export interface TransportOptions {
  session: Session;
  retry: RetryPolicy;
  fetch: (request: Request) => Promise<Response>;
  newKey: () => string;
  sleep: (ms: number) => Promise<void>;
}

export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

function carriesBearer(url: string): boolean {
  const path = new URL(url).pathname;
  return !CREDENTIAL_PATHS.some((prefix) => path.includes(prefix));
}

export function createTransport(options: TransportOptions): (request: Request) => Promise<Response> {
  const { session, retry } = options;

  return async function send(request: Request): Promise<Response> {
    const write = !READS.has(request.method);
    // Buffered once, so every retry sends the same bytes.
    const body = write ? await request.arrayBuffer() : undefined;
    const headers = new Headers(request.headers);
    if (write && !headers.has("Idempotency-Key")) headers.set("Idempotency-Key", options.newKey());
    const useBearer = !headers.has("Authorization") && carriesBearer(request.url);
    let renewed = false;

    for (let attempt = 1; ; attempt++) {
      const token = useBearer ? await session.accessToken() : null;
      if (token !== null) headers.set("Authorization", `Bearer ${token}`);
      let response: Response;
      try {
        // The original request's options (cache, credentials, signal...) with our headers.
        response = await options.fetch(new Request(request, { headers, body }));
      } catch (error) {
        // React Native's Request may have no signal.
        if ((request.signal as AbortSignal | undefined)?.aborted || attempt >= retry.maxAttempts) throw error;
        await options.sleep(backoff(retry, attempt));
        continue;
      }
      if (response.status === 401 && token !== null && !renewed) {
        renewed = true;
        const fresh = await session.renew(token);
        if (fresh !== null) {
          await response.body?.cancel();
          attempt--; // a refresh is not a retry
          continue;
        }
        return response;
      }
      if ((response.status === 429 || response.status === 503) && attempt < retry.maxAttempts) {
        const wait = waitFor(response, retry, attempt);
        if (wait !== undefined) {
          await response.body?.cancel();
          await options.sleep(wait);
          continue;
        }
      }
      return response;
    }
  };
}

function backoff(retry: RetryPolicy, attempt: number): number {
  return Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
}

/** How long to wait before retrying a 429/503, or undefined not to retry it. */
function waitFor(response: Response, retry: RetryPolicy, attempt: number): number | undefined {
  const seconds = parseRetryAfter(response.headers.get("Retry-After"));
  if (seconds === undefined) {
    // A 429 without Retry-After says nothing about when; a bare 503 is retried.
    return response.status === 503 ? backoff(retry, attempt) : undefined;
  }
  const ms = seconds * 1000;
  return ms <= retry.maxDelayMs ? ms : undefined;
}
