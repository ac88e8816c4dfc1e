/**
 * The web app is served by the gateway at /app/ (GATEWAY_WEB_DIR, web/dist by
 * default) and calls the API on the same origin. API_BASE_URL at build time
 * points a build elsewhere (the backend root including /api); `npm run dev`
 * proxies /api to it (default the local gateway, http://127.0.0.1:8080/api).
 * TELEGRAM_MINI_APP_URL (`https://t.me/<bot>/<app>`) adds a Telegram invite
 * link (`?startapp=<referral code>`) to the referrals panel.
 */
import { defineConfig } from "vite";

const apiBaseUrl = process.env.API_BASE_URL ?? "";
const devTarget = new URL(apiBaseUrl || "http://127.0.0.1:8080/api").origin;

export default defineConfig({
  base: "/app/",
  define: {
    __API_BASE_URL__: JSON.stringify(apiBaseUrl),
    __TELEGRAM_MINI_APP_URL__: JSON.stringify(process.env.TELEGRAM_MINI_APP_URL ?? ""),
  },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  server: { proxy: { "/api": devTarget } },
});
