/**
 * The caller's tokens and their rotation.
 *
 * An access token lives 15 minutes; the refresh token rotates on every use
 * (`POST /api/auth/refresh`), and the server revokes the whole session when a
 * used refresh token comes back. So refreshes are single-flight: concurrent
 * requests that find the access token stale share one refresh call, and the
 * new pair is saved before anyone uses it.
 */

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires (epoch milliseconds). */
  accessExpiresAt: number;
}

/** Where tokens persist: memory (the default), localStorage, Expo SecureStore... */
export interface TokenStore {
  load(): Tokens | null | Promise<Tokens | null>;
  save(tokens: Tokens | null): void | Promise<void>;
}

export function memoryTokenStore(initial: Tokens | null = null): TokenStore {
  let tokens = initial;
  return {
    load: () => tokens,
    save: (next) => {
      tokens = next;
    },
  };
}

/** The pair as the auth routes answer it (`tokens` of verify and refresh). */
export interface TokenPairBody {
  accessToken?: string;
  refreshToken?: string;
  expiresIn?: number;
}

export function tokensOf(pair: TokenPairBody | undefined, now: number = Date.now()): Tokens {
  if (!pair?.accessToken || !pair.refreshToken) {
    throw new Error("the auth answer carried no token pair");
  }
  return {
    accessToken: pair.accessToken,
    refreshToken: pair.refreshToken,
    accessExpiresAt: now + (pair.expiresIn ?? 0) * 1000,
  };
}

/** Why a session ended: the server refused the refresh token, or logout. */
export type SessionEnd = { reason: "refresh_refused"; code: string } | { reason: "logout" };

/**
 * Exchanges a refresh token for a new pair; null when the server refuses it
 * (reused, revoked, expired: the session is over). Throws on network errors,
 * which keep the session for a later try.
 */
export type Refresher = (refreshToken: string) => Promise<Tokens | { refused: string }>;

export class Session {
  private inFlight: Promise<string | null> | null = null;

  constructor(
    private readonly store: TokenStore,
    private readonly refresher: Refresher,
    private readonly onEnd: (end: SessionEnd) => void = () => {},
    /** Refresh this long before the access token's expiry. */
    private readonly skewMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  async tokens(): Promise<Tokens | null> {
    return await this.store.load();
  }

  async set(tokens: Tokens | null): Promise<void> {
    await this.store.save(tokens);
  }

  async end(end: SessionEnd): Promise<void> {
    await this.store.save(null);
    this.onEnd(end);
  }

  /** A usable access token (refreshed first when about to expire), or null. */
  async accessToken(): Promise<string | null> {
    const tokens = await this.store.load();
    if (tokens === null) return null;
    if (tokens.accessExpiresAt - this.skewMs > this.now()) return tokens.accessToken;
    return await this.refresh();
  }

  /**
   * After a 401 with `staleAccess`: a fresh access token, or null when the
   * session is over. A refresh someone else already did is reused.
   */
  async renew(staleAccess: string): Promise<string | null> {
    const tokens = await this.store.load();
    if (tokens === null) return null;
    if (tokens.accessToken !== staleAccess) return tokens.accessToken;
    return await this.refresh();
  }

  private refresh(): Promise<string | null> {
    this.inFlight ??= this.rotate().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async rotate(): Promise<string | null> {
    const tokens = await this.store.load();
    if (tokens === null) return null;
    const next = await this.refresher(tokens.refreshToken);
    if ("refused" in next) {
      await this.end({ reason: "refresh_refused", code: next.refused });
      return null;
    }
    await this.store.save(next);
    return next.accessToken;
  }
}
