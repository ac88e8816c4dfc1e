/** What every panel of the app shares: the client and the error line. */

import {
  ApiProblem,
  type MinequestClient,
  type SessionEnd,
  type TokenStore,
  type Schemas,
  type Tokens,
  createMinequestClient,
} from "@minequest/client";

declare const __API_BASE_URL__: string;
declare const __TELEGRAM_MINI_APP_URL__: string;

/** The API on this page's origin unless the build was pointed elsewhere. */
export const API_BASE_URL = __API_BASE_URL__ || `${location.origin}/api`;

/** The bot's Mini App link (`https://t.me/<bot>/<app>`), if the build was given one. */
export const TELEGRAM_MINI_APP_URL = __TELEGRAM_MINI_APP_URL__;

const TOKENS_KEY = "minequest.tokens";

/** Tokens kept across reloads (localStorage). */
export const browserTokenStore: TokenStore = {
  load() {
    const raw = localStorage.getItem(TOKENS_KEY);
    return raw === null ? null : (JSON.parse(raw) as Tokens);
  },
  save(tokens) {
    if (tokens === null) localStorage.removeItem(TOKENS_KEY);
    else localStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  },
};

export interface App {
  mq: MinequestClient;
  /** Show an error (a problem's detail and code) in the page's error line. */
  report(error: unknown): void;
  /** Something changed the balance or XP: panels reload what they show. */
  changed(): void;
}

export function newClient(onSessionEnd: (end: SessionEnd) => void): MinequestClient {
  return createMinequestClient({ baseUrl: API_BASE_URL, tokens: browserTokenStore, onSessionEnd });
}

export function describe(error: unknown): string {
  if (error instanceof ApiProblem) {
    const wait = error.retryAfterSeconds !== undefined ? ` (retry in ${error.retryAfterSeconds} s)` : "";
    return `${error.detail || error.title} [${error.code}]${wait}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** An amount as the page shows it: `0.005 MQC`, or a dash for none. */
export function money(value: Schemas["minequest.common.v1.Money"] | undefined): string {
  return value?.amount ? `${value.amount} ${value.currency ?? ""}`.trim() : "—";
}
