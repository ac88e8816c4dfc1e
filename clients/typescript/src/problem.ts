/**
 * The gateway's errors (RFC 9457 `application/problem+json`) as exceptions.
 *
 *     ApiProblem                   any non-2xx answer; `code` is the stable machine code
 *     ├── BadRequestProblem          400 (`field` names the input to blame)
 *     ├── UnauthorizedProblem        401 (no, expired or revoked token; session ended)
 *     ├── ForbiddenProblem           403
 *     ├── NotFoundProblem            404
 *     ├── ConflictProblem            409 (e.g. an Idempotency-Key still in flight)
 *     ├── PreconditionFailedProblem  412 (e.g. insufficient_funds)
 *     ├── UnprocessableProblem       422 (e.g. idempotency_key_reused)
 *     ├── TooManyRequestsProblem     429 (`retryAfterSeconds`)
 *     ├── ServiceUnavailableProblem  503 (`retryAfterSeconds`)
 *     └── ServerProblem              any other 5xx
 */

/** The members every problem body has, plus the route's own extensions. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  /** Stable machine code, e.g. `invalid_field`, `energy_exhausted`. */
  error: string;
  detail: string;
  request_id?: string | null;
  field?: string;
  [extension: string]: unknown;
}

export class ApiProblem extends Error {
  override readonly name: string = "ApiProblem";
  readonly type: string;
  readonly title: string;
  readonly status: number;
  /** The problem's `error` member: what code should branch on. */
  readonly code: string;
  readonly detail: string;
  readonly field: string | undefined;
  readonly requestId: string | undefined;
  /** From the `Retry-After` header, when the answer had one. */
  readonly retryAfterSeconds: number | undefined;
  /** The whole body, extensions included (e.g. `clickStatus`, `completion`). */
  readonly body: ProblemBody;

  constructor(body: ProblemBody, retryAfterSeconds?: number) {
    super(`${body.status} ${body.error}: ${body.detail}`);
    this.type = body.type;
    this.title = body.title;
    this.status = body.status;
    this.code = body.error;
    this.detail = body.detail;
    this.field = body.field;
    this.requestId = body.request_id ?? undefined;
    this.retryAfterSeconds = retryAfterSeconds;
    this.body = body;
  }
}

export class BadRequestProblem extends ApiProblem {
  override readonly name = "BadRequestProblem";
}
export class UnauthorizedProblem extends ApiProblem {
  override readonly name = "UnauthorizedProblem";
}
export class ForbiddenProblem extends ApiProblem {
  override readonly name = "ForbiddenProblem";
}
export class NotFoundProblem extends ApiProblem {
  override readonly name = "NotFoundProblem";
}
export class ConflictProblem extends ApiProblem {
  override readonly name = "ConflictProblem";
}
export class PreconditionFailedProblem extends ApiProblem {
  override readonly name = "PreconditionFailedProblem";
}
export class UnprocessableProblem extends ApiProblem {
  override readonly name = "UnprocessableProblem";
}
export class TooManyRequestsProblem extends ApiProblem {
  override readonly name = "TooManyRequestsProblem";
}
export class ServiceUnavailableProblem extends ApiProblem {
  override readonly name = "ServiceUnavailableProblem";
}
export class ServerProblem extends ApiProblem {
  override readonly name = "ServerProblem";
}

const BY_STATUS: Record<number, new (body: ProblemBody, retryAfter?: number) => ApiProblem> = {
  400: BadRequestProblem,
  401: UnauthorizedProblem,
  403: ForbiddenProblem,
  404: NotFoundProblem,
  409: ConflictProblem,
  412: PreconditionFailedProblem,
  422: UnprocessableProblem,
  429: TooManyRequestsProblem,
  503: ServiceUnavailableProblem,
};

/** Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP date). */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

function isProblemBody(value: unknown): value is ProblemBody {
  if (typeof value !== "object" || value === null) return false;
  const body = value as Record<string, unknown>;
  return typeof body.status === "number" && typeof body.error === "string";
}

/**
 * The exception for an error answer. `body` is what openapi-fetch parsed (the
 * problem object, or text when the answer was not JSON, e.g. a proxy's page).
 */
export function problemFrom(response: Response, body: unknown): ApiProblem {
  const problem: ProblemBody = isProblemBody(body)
    ? {
        ...body,
        type: String(body.type ?? "about:blank"),
        title: String(body.title ?? response.statusText),
        detail: String(body.detail ?? ""),
      }
    : {
        type: "about:blank",
        title: response.statusText || `HTTP ${response.status}`,
        status: response.status,
        error: `http_${response.status}`,
        detail: typeof body === "string" ? body.slice(0, 200) : "",
        request_id: response.headers.get("X-Request-ID"),
      };
  const retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
  const Kind = BY_STATUS[problem.status] ?? (problem.status >= 500 ? ServerProblem : ApiProblem);
  return new Kind(problem, retryAfter);
}
