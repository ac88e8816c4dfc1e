/** The hand-written layer against a real (tiny) HTTP server: node --test. */

import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import {
  ApiProblem,
  BadRequestProblem,
  ConflictProblem,
  ConfigError,
  ServerProblem,
  ServiceUnavailableProblem,
  type SessionEnd,
  TooManyRequestsProblem,
  type Tokens,
  UnauthorizedProblem,
  apiBaseUrlFromEnv,
  checkApiBaseUrl,
  createMinequestClient,
  memoryTokenStore,
  unwrap,
} from "../src/index.js";
import { type Handler, type TestServer, problem, serve } from "./server.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const waits: number[] = [];
async function clientFor(handler: Handler, tokens: Tokens | null = null, onEnd?: (end: SessionEnd) => void) {
  server = await serve(handler);
  waits.length = 0;
  const store = memoryTokenStore(tokens);
  const mq = createMinequestClient({
    baseUrl: server.baseUrl,
    tokens: store,
    onSessionEnd: onEnd,
    sleep: async (ms) => {
      waits.push(ms);
    },
  });
  return { mq, store, seen: server.seen };
}

const fresh = (access = "access-1", refresh = "refresh-1"): Tokens => ({
  accessToken: access,
  refreshToken: refresh,
  accessExpiresAt: Date.now() + 900_000,
});

const STATUS = { totalTaps: "3", energy: 97, maxEnergy: 100 };

describe("the base URL", () => {
  it("comes from API_BASE_URL, else EXPO_PUBLIC_API_BASE_URL, and includes /api", () => {
    assert.equal(
      apiBaseUrlFromEnv({ API_BASE_URL: "https://mintminepro.com/api", EXPO_PUBLIC_API_BASE_URL: "x" }),
      "https://mintminepro.com/api",
    );
    assert.equal(
      apiBaseUrlFromEnv({ EXPO_PUBLIC_API_BASE_URL: "http://10.0.2.2:8080/api/" }),
      "http://10.0.2.2:8080/api/",
    );
    assert.equal(checkApiBaseUrl("https://example.com/minequest/api/"), "https://example.com/minequest");
  });

  it("is refused with the variable named when missing or without /api", () => {
    assert.throws(() => apiBaseUrlFromEnv({}), /API_BASE_URL or EXPO_PUBLIC_API_BASE_URL is required/);
    assert.throws(
      () => apiBaseUrlFromEnv({ API_BASE_URL: "https://mintminepro.com" }),
      (error: unknown) => error instanceof ConfigError && /API_BASE_URL must end with \/api/.test(error.message),
    );
    assert.throws(() => checkApiBaseUrl("mintminepro.com/api"), /must be an absolute URL/);
    assert.throws(() => checkApiBaseUrl("ftp://mintminepro.com/api"), /must be http\(s\)/);
  });

  it("prefixes the generated paths", async () => {
    const { mq, seen } = await clientFor(() => ({ status: 200, body: { wallets: [] } }));
    await unwrap(mq.api.GET("/api/public/wallets"));
    assert.equal(seen[0]?.path, "/api/public/wallets");
  });
});

describe("idempotency keys", () => {
  it("are added to a write that has none, and reused with the same body on every retry", async () => {
    const { mq, seen } = await clientFor((_request, all) =>
      all.length < 3
        ? { status: 503, headers: { "Retry-After": "1" }, body: problem(503, "queue_full").body }
        : { status: 200, body: { user: { username: "digger" } } },
    );
    const answer = await unwrap(mq.api.PATCH("/api/auth/me", { body: { username: "digger" } }));
    assert.equal(answer.user?.username, "digger");
    assert.equal(seen.length, 3);
    const keys = seen.map((request) => request.headers["idempotency-key"]);
    assert.match(String(keys[0]), /^[0-9a-f-]{36}$/);
    assert.deepEqual(keys, [keys[0], keys[0], keys[0]]);
    assert.deepEqual(
      seen.map((request) => request.body),
      Array(3).fill('{"username":"digger"}'),
    );
    assert.deepEqual(waits, [1000, 1000]);
  });

  it("keep the caller's own key (one per batch of taps)", async () => {
    const { mq, seen } = await clientFor(() => ({
      status: 202,
      body: { key: "batch-1", status: "queued", acceptedTaps: 4 },
    }));
    const queued = await unwrap(
      mq.api.POST("/api/mining/click", {
        params: { header: { "Idempotency-Key": "batch-1" } },
        body: { count: 4, firstTapAt: "2026-12-01T10:00:00Z", lastTapAt: "2026-12-01T10:00:01Z" },
      }),
    );
    assert.equal(queued.acceptedTaps, 4);
    assert.equal(seen[0]?.headers["idempotency-key"], "batch-1");
  });

  it("are not put on reads", async () => {
    const { mq, seen } = await clientFor(() => ({ status: 200, body: { wallets: [] } }));
    await unwrap(mq.api.GET("/api/public/wallets"));
    assert.equal(seen[0]?.headers["idempotency-key"], undefined);
  });
});

describe("Retry-After", () => {
  it("is not waited for when longer than the bound: the 429 is thrown with it", async () => {
    const { mq, seen } = await clientFor(() =>
      problem(429, "daily_cap_reached", { headers: { "Retry-After": "3600" } }),
    );
    const call = unwrap(
      mq.api.POST("/api/mining/click", { params: { header: { "Idempotency-Key": "k" } } }),
    );
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof TooManyRequestsProblem);
      assert.equal(error.code, "daily_cap_reached");
      assert.equal(error.status, 429);
      assert.equal(error.retryAfterSeconds, 3600);
      return true;
    });
    assert.equal(seen.length, 1);
    assert.deepEqual(waits, []);
  });

  it("bounds the retries: a 503 that persists is thrown after maxAttempts", async () => {
    const { mq, seen } = await clientFor(() =>
      problem(503, "queue_full", { headers: { "Retry-After": "2" } }),
    );
    await assert.rejects(
      unwrap(mq.api.POST("/api/mining/click", { params: { header: { "Idempotency-Key": "k" } } })),
      (error: unknown) => error instanceof ServiceUnavailableProblem && error.retryAfterSeconds === 2,
    );
    assert.equal(seen.length, 3);
    assert.deepEqual(waits, [2000, 2000]);
  });

  it("also takes an HTTP date", async () => {
    const at = new Date(Date.now() + 2_000).toUTCString();
    const { mq, seen } = await clientFor((_request, all) =>
      all.length === 1 ? problem(429, "tap_rate_exceeded", { headers: { "Retry-After": at } }) : { status: 200, body: STATUS },
    );
    await unwrap(mq.api.GET("/api/mining/status"));
    assert.equal(seen.length, 2);
    assert.ok(waits[0] !== undefined && waits[0] > 0 && waits[0] <= 3000, `waited ${waits[0]}`);
  });
});

describe("network failures", () => {
  it("are retried with the same key, then thrown", async () => {
    let calls = 0;
    const keys: (string | null)[] = [];
    const mq = createMinequestClient({
      baseUrl: "http://127.0.0.1:9/api",
      sleep: async () => {},
      fetch: async (request) => {
        calls += 1;
        keys.push(request.headers.get("Idempotency-Key"));
        throw new TypeError("fetch failed");
      },
    });
    await assert.rejects(mq.api.PATCH("/api/auth/me", { body: { username: "x" } }), /fetch failed/);
    assert.equal(calls, 3);
    assert.equal(new Set(keys).size, 1);
  });
});

describe("bearer tokens", () => {
  it("are sent on user routes but not on the routes that issue them", async () => {
    const { mq, seen } = await clientFor(
      (request) =>
        request.path.startsWith("/api/auth/otp/verify")
          ? { status: 200, body: { tokens: { accessToken: "a2", refreshToken: "r2", expiresIn: 900 }, user: { id: "u1" } } }
          : { status: 200, body: STATUS },
      fresh(),
    );
    await unwrap(mq.api.GET("/api/mining/status"));
    const user = await mq.verifyCode("challenge-1", "123456");
    await unwrap(mq.api.GET("/api/mining/status"));
    assert.equal(user?.id, "u1");
    assert.deepEqual(
      seen.map((request) => request.headers.authorization),
      ["Bearer access-1", undefined, "Bearer a2"],
    );
  });

  it("come from a Telegram Mini App's initData, sent without a bearer", async () => {
    const { mq, seen } = await clientFor((request) =>
      request.path === "/api/auth/telegram"
        ? {
            status: 200,
            body: { tokens: { accessToken: "tg-a", refreshToken: "tg-r", expiresIn: 900 }, user: { id: "u7" }, created: true },
          }
        : { status: 200, body: STATUS },
    );
    const answer = await mq.telegramLogin("query_id=AA&user=%7B%7D&auth_date=1&hash=ab");
    await unwrap(mq.api.GET("/api/mining/status"));
    assert.equal(answer.user?.id, "u7");
    assert.equal(answer.created, true);
    assert.deepEqual(JSON.parse(seen[0]?.body ?? "{}"), { initData: "query_id=AA&user=%7B%7D&auth_date=1&hash=ab" });
    assert.deepEqual(
      seen.map((request) => request.headers.authorization),
      [undefined, "Bearer tg-a"],
    );
  });

  it("are refreshed once for concurrent calls when stale; the rotated pair is kept", async () => {
    const stale: Tokens = { ...fresh("old"), accessExpiresAt: Date.now() - 1 };
    const { mq, store, seen } = await clientFor(
      (request) =>
        request.path === "/api/auth/refresh"
          ? { status: 200, body: { tokens: { accessToken: "new", refreshToken: "refresh-2", expiresIn: 900 } } }
          : { status: 200, body: STATUS },
      stale,
    );
    await Promise.all([1, 2, 3].map(() => unwrap(mq.api.GET("/api/mining/status"))));
    const refreshes = seen.filter((request) => request.path === "/api/auth/refresh");
    assert.equal(refreshes.length, 1);
    assert.equal(JSON.parse(refreshes[0]?.body ?? "{}").refreshToken, "refresh-1");
    assert.equal(refreshes[0]?.headers.authorization, undefined);
    const others = seen.filter((request) => request.path !== "/api/auth/refresh");
    assert.deepEqual(others.map((request) => request.headers.authorization), Array(3).fill("Bearer new"));
    const kept = await store.load();
    assert.equal(kept?.refreshToken, "refresh-2");
  });

  it("are refreshed after a 401 and the write retried with its key", async () => {
    const { mq, seen } = await clientFor((request) => {
      if (request.path === "/api/auth/refresh") {
        return { status: 200, body: { tokens: { accessToken: "a2", refreshToken: "r2", expiresIn: 900 } } };
      }
      return request.headers.authorization === "Bearer a2"
        ? { status: 202, body: { key: "k1", status: "queued", acceptedTaps: 1 } }
        : problem(401, "token_expired");
    }, fresh("a1"));
    await unwrap(mq.api.POST("/api/mining/click", { params: { header: { "Idempotency-Key": "k1" } } }));
    const clicks = seen.filter((request) => request.path === "/api/mining/click");
    assert.deepEqual(clicks.map((request) => request.headers.authorization), ["Bearer a1", "Bearer a2"]);
    assert.deepEqual(clicks.map((request) => request.headers["idempotency-key"]), ["k1", "k1"]);
  });

  it("end the session when the refresh is refused, and the 401 is thrown", async () => {
    const ends: SessionEnd[] = [];
    const { mq, store } = await clientFor(
      (request) => (request.path === "/api/auth/refresh" ? problem(401, "refresh_token_reused") : problem(401, "token_revoked")),
      fresh(),
      (end) => ends.push(end),
    );
    await assert.rejects(unwrap(mq.api.GET("/api/wallet/balance")), UnauthorizedProblem);
    assert.deepEqual(ends, [{ reason: "refresh_refused", code: "refresh_token_reused" }]);
    assert.equal(await store.load(), null);
  });

  it("are revoked and forgotten on logout", async () => {
    const ends: SessionEnd[] = [];
    const { mq, store, seen } = await clientFor(() => ({ status: 204 }), fresh(), (end) => ends.push(end));
    await mq.logout();
    assert.equal(seen[0]?.path, "/api/auth/logout");
    assert.equal(seen[0]?.headers.authorization, "Bearer access-1");
    assert.equal(await store.load(), null);
    assert.deepEqual(ends, [{ reason: "logout" }]);
  });
});

describe("problem+json errors", () => {
  it("become typed exceptions carrying type, code, status, detail and field", async () => {
    const { mq } = await clientFor(() => problem(400, "invalid_field", { field: "username" }));
    await assert.rejects(unwrap(mq.api.PATCH("/api/auth/me", { body: { username: "" } })), (error: unknown) => {
      assert.ok(error instanceof BadRequestProblem && error instanceof ApiProblem);
      assert.equal(error.type, "https://minequest.dev/problems/invalid_field");
      assert.equal(error.code, "invalid_field");
      assert.equal(error.status, 400);
      assert.equal(error.detail, "invalid_field (test)");
      assert.equal(error.field, "username");
      assert.equal(error.requestId, "req-1");
      return true;
    });
  });

  it("keep the route's extensions", async () => {
    const { mq } = await clientFor(() => problem(409, "already_completed", { completion: { questId: "q1" } }));
    await assert.rejects(
      unwrap(mq.api.POST("/api/quests/{questId}/complete", {
        params: { path: { questId: "q1" }, header: { "Idempotency-Key": "k" } },
      })),
      (error: unknown) =>
        error instanceof ConflictProblem && (error.body.completion as { questId: string }).questId === "q1",
    );
  });

  it("cover an answer that is not a problem (a proxy's page)", async () => {
    const { mq } = await clientFor(() => ({
      status: 502,
      headers: { "Content-Type": "text/html" },
      body: "<html>Bad gateway</html>",
    }));
    await assert.rejects(unwrap(mq.api.GET("/api/public/wallets")), (error: unknown) => {
      assert.ok(error instanceof ServerProblem);
      assert.equal(error.code, "http_502");
      assert.match(error.detail, /Bad gateway/);
      return true;
    });
  });
});
