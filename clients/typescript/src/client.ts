/**
 * `createMinequestClient`: the generated, typed client (openapi-fetch over the
 * `paths` that openapi-typescript generates from openapi.json) sending through
 * the transport (bearer + refresh, Idempotency-Key, Retry-After), plus the
 * login flow that fills the session.
 *
 *     const mq = createMinequestClient({ baseUrl: apiBaseUrlFromEnv(process.env) });
 *     const { challengeId, devCode } = await mq.requestCode({ email });
 *     await mq.verifyCode(challengeId, code);
 *     const status = await unwrap(mq.api.GET("/api/mining/status"));
 *
 * `unwrap` turns an error answer into a typed `ApiProblem` (problem.ts).
 */

import createClient, { type Client } from "openapi-fetch";

import { checkApiBaseUrl } from "./config.js";
import type { components, paths } from "./generated/schema.js";
import { problemFrom } from "./problem.js";
import { type SessionEnd, Session, type TokenStore, memoryTokenStore, tokensOf } from "./session.js";
import {
  DEFAULT_RETRY,
  type RetryPolicy,
  createTransport,
  newIdempotencyKey,
  sleep,
} from "./transport.js";

export type Schemas = components["schemas"];
export type User = Schemas["minequest.auth.v1.User"];

export interface MinequestClientOptions {
  /** The backend root including `/api` (`API_BASE_URL`, `EXPO_PUBLIC_API_BASE_URL`). */
  baseUrl: string;
  /** Where the tokens live between runs (memory by default). */
  tokens?: TokenStore;
  /** Called once when the session ends (refresh refused, or logout). */
  onSessionEnd?: (end: SessionEnd) => void;
  retry?: Partial<RetryPolicy>;
  /** A custom fetch (tests, React Native polyfills). */
  fetch?: (request: Request) => Promise<Response>;
  newKey?: () => string;
  sleep?: (ms: number) => Promise<void>;
}

export interface MinequestClient {
  /** Every route of openapi.json, typed: `api.GET("/api/wallet/balance")`. */
  api: Client<paths>;
  session: Session;
  /** `POST /api/auth/otp/request`; `devCode` only on a dev server. */
  requestCode(
    contact: { email: string } | { phone: string },
  ): Promise<Schemas["minequest.auth.v1.RequestOtpResponse"]>;
  /** `POST /api/auth/otp/verify`: the code (or login key) for the tokens, kept in the session. */
  verifyCode(challengeId: string, code: string): Promise<User | undefined>;
  /**
   * `POST /api/auth/telegram`: a Mini App's `Telegram.WebApp.initData` for
   * the tokens, kept in the session (the first login makes the account).
   */
  telegramLogin(initData: string): Promise<Schemas["minequest.auth.v1.TelegramLoginResponse"]>;
  /** `POST /api/auth/logout`, then forget the tokens. */
  logout(): Promise<void>;
}

/** The data of a successful answer; an error answer throws its `ApiProblem`. */
export async function unwrap<T>(
  pending: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await pending;
  if (!response.ok) throw problemFrom(response, error);
  return data as T;
}

export function createMinequestClient(options: MinequestClientOptions): MinequestClient {
  const origin = checkApiBaseUrl(options.baseUrl);
  const rawFetch = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const retry = { ...DEFAULT_RETRY, ...options.retry };

  // The refresh goes out bare (no bearer, no retry loop): its token is single-use.
  const plain = createClient<paths>({ baseUrl: origin, fetch: rawFetch });
  const session = new Session(
    options.tokens ?? memoryTokenStore(),
    async (refreshToken) => {
      const { data, error, response } = await plain.POST("/api/auth/refresh", {
        body: { refreshToken },
      });
      if (response.ok) return tokensOf(data?.tokens);
      if (response.status >= 500) throw problemFrom(response, error);
      return { refused: problemFrom(response, error).code };
    },
    options.onSessionEnd,
  );
  const api = createClient<paths>({
    baseUrl: origin,
    fetch: createTransport({
      session,
      retry,
      fetch: rawFetch,
      newKey: options.newKey ?? newIdempotencyKey,
      sleep: options.sleep ?? sleep,
    }),
  });

  return {
    api,
    session,
    requestCode: (contact) => unwrap(api.POST("/api/auth/otp/request", { body: contact })),
    async verifyCode(challengeId, code) {
      const answer = await unwrap(
        api.POST("/api/auth/otp/verify", { body: { challengeId, code } }),
      );
      await session.set(tokensOf(answer.tokens));
      return answer.user;
    },
    async telegramLogin(initData) {
      const answer = await unwrap(api.POST("/api/auth/telegram", { body: { initData } }));
      await session.set(tokensOf(answer.tokens));
      return answer;
    },
    async logout() {
      try {
        if ((await session.tokens()) !== null) await unwrap(api.POST("/api/auth/logout"));
      } finally {
        await session.end({ reason: "logout" });
      }
    },
  };
}
