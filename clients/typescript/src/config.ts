/**
 * The API base URL: what web and mobile builds are pointed at.
 *
 * Both read the backend root *including* the `/api` suffix
 * (`https://mintminepro.com/api`, `http://127.0.0.1:8080/api` locally):
 * `API_BASE_URL` for web and Node, `EXPO_PUBLIC_API_BASE_URL` for Expo builds
 * (Expo inlines only `EXPO_PUBLIC_*` variables into the bundle).
 */

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** The environment variables read, first one set wins. */
export const BASE_URL_VARIABLES = ["API_BASE_URL", "EXPO_PUBLIC_API_BASE_URL"] as const;

/**
 * The base URL from an environment (`process.env` in Node; in an Expo app pass
 * `{ EXPO_PUBLIC_API_BASE_URL: process.env.EXPO_PUBLIC_API_BASE_URL }`, since
 * Expo only inlines variables it sees spelled out).
 */
export function apiBaseUrlFromEnv(env: Record<string, string | undefined>): string {
  for (const name of BASE_URL_VARIABLES) {
    const value = env[name]?.trim();
    if (value) {
      checkApiBaseUrl(value, name);
      return value;
    }
  }
  throw new ConfigError(
    `${BASE_URL_VARIABLES.join(" or ")} is required: the backend root including /api, ` +
      "e.g. https://mintminepro.com/api",
  );
}

/**
 * The origin the generated paths (`/api/...`) hang off: the base URL without
 * its `/api` suffix, so `https://host/prefix/api` serves `/prefix/api/...`.
 */
export function checkApiBaseUrl(value: string, name = "baseUrl"): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} must be an absolute URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${name} must be http(s), got ${JSON.stringify(value)}`);
  }
  if (url.search || url.hash) {
    throw new ConfigError(`${name} must not carry a query or fragment, got ${JSON.stringify(value)}`);
  }
  const path = url.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/api")) {
    throw new ConfigError(
      `${name} must end with /api (e.g. https://mintminepro.com/api), got ${JSON.stringify(value)}`,
    );
  }
  return url.origin + path.slice(0, -"/api".length);
}
