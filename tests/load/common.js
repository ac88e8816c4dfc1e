// Shared by the k6 scripts in tests/load (k6 resolves this relative import).
//
// Tokens: AUTH_TOKEN (one access token) or TOKENS_FILE (one per line, e.g.
// minted for many test users), read once in the init context.

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');

export function tokens() {
  if (__ENV.TOKENS_FILE) {
    const lines = open(__ENV.TOKENS_FILE).split('\n').map((line) => line.trim());
    const found = lines.filter((line) => line.length > 0);
    if (found.length === 0) {
      throw new Error(`TOKENS_FILE ${__ENV.TOKENS_FILE} has no tokens`);
    }
    return found;
  }
  if (__ENV.AUTH_TOKEN) {
    return [__ENV.AUTH_TOKEN];
  }
  throw new Error('set AUTH_TOKEN (an access token) or TOKENS_FILE (one token per line)');
}

export function number(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number, got ${raw}`);
  }
  return value;
}

// A fresh key per request (k6 has crypto.randomUUID from v0.45; this works everywhere).
export function newKey(prefix) {
  const hex = () => Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return `${prefix}-${__VU}-${__ITER}-${hex()}${hex()}`;
}

export function jsonHeaders(token, extra) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  return Object.assign(headers, extra || {});
}
