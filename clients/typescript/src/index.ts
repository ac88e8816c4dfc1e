/** The Minequest HTTP client: see README.md beside this package. */

export {
  type MinequestClient,
  type MinequestClientOptions,
  type Schemas,
  type User,
  createMinequestClient,
  unwrap,
} from "./client.js";
export { BASE_URL_VARIABLES, ConfigError, apiBaseUrlFromEnv, checkApiBaseUrl } from "./config.js";
export type { components, operations, paths } from "./generated/schema.js";
export {
  ApiProblem,
  BadRequestProblem,
  ConflictProblem,
  ForbiddenProblem,
  NotFoundProblem,
  PreconditionFailedProblem,
  type ProblemBody,
  ServerProblem,
  ServiceUnavailableProblem,
  TooManyRequestsProblem,
  UnauthorizedProblem,
  UnprocessableProblem,
  parseRetryAfter,
  problemFrom,
} from "./problem.js";
export {
  Session,
  type SessionEnd,
  type TokenStore,
  type Tokens,
  memoryTokenStore,
  tokensOf,
} from "./session.js";
export { DEFAULT_RETRY, type RetryPolicy, newIdempotencyKey } from "./transport.js";
