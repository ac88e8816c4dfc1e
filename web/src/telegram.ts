/**
 * Inside Telegram: the Mini App's signed `initData`, which logs in with no
 * code (`POST /api/auth/telegram`), and its `start_param` (a referral code
 * from a `t.me/<bot>/<app>?startapp=<code>` link, read by the server).
 *
 * Telegram opens the page with `#tgWebAppData=<initData>` in the URL, and its
 * script (https://telegram.org/js/telegram-web-app.js, which a deployment
 * may add to index.html for theming and the native buttons) turns that into
 * `window.Telegram.WebApp`. Both are read, so the app works with or without
 * the script, and offline pages never wait for it.
 */

interface TelegramWebApp {
  initData?: string;
  initDataUnsafe?: { start_param?: string };
  ready?: () => void;
  expand?: () => void;
}

declare global {
  interface Window {
    Telegram?: { WebApp?: TelegramWebApp };
  }
}

export interface TelegramLaunch {
  initData: string;
  startParam: string | null;
}

/** The launch's initData, or null outside Telegram. */
export function telegramLaunch(): TelegramLaunch | null {
  const webApp = window.Telegram?.WebApp;
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("tgWebAppData");
  const initData = typeof webApp?.initData === "string" && webApp.initData ? webApp.initData : fromHash;
  if (!initData) return null;
  webApp?.ready?.();
  webApp?.expand?.();
  const startParam = webApp?.initDataUnsafe?.start_param ?? new URLSearchParams(initData).get("start_param");
  return { initData, startParam: startParam || null };
}
