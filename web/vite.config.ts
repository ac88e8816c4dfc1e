/**
 * The web app is served by the gateway at /app/ (GATEWAY_WEB_DIR, web/dist by
 * default) and calls the API on the same origin. API_BASE_URL at build time
 * points a build elsewhere (the backend root including /api); `npm run dev`
 * proxies /api to it (default the local gateway, http://127.0.0.1:8080/api).
 */
import { defineConfig } from "vite";

const apiBaseUrl = process.env.API_BASE_URL ?? "";
const devTarget = new URL(apiBaseUrl || "http://127.0.0.1:8080/api").origin;

export default defineConfig({
  base: "/app/",
  define: { __API_BASE_URL__: JSON.stringify(apiBaseUrl) },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  server: { proxy: { "/api": devTarget } },
});
