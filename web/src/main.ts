/**
 * The Minequest web app: sign in, then mine, quests, leaderboard and wallet,
 * all through @minequest/client (generated from openapi.json).
 */

import "./style.css";

import type { User } from "@minequest/client";

import { type App, describe, newClient } from "./context";
import { fill, h } from "./dom";
import { loginView } from "./login";
import { type MiningPanel, miningPanel } from "./mining";
import { leaderboardPanel, questsPanel } from "./quests";
import { walletPanel } from "./wallet";

const root = document.getElementById("root") as HTMLElement;
const errorLine = h("p", { class: "error", "data-testid": "error", role: "alert" });
let mining: MiningPanel | null = null;

const mq = newClient(() => showLogin());
const app: App = {
  mq,
  report(error) {
    errorLine.textContent = describe(error);
  },
  changed() {
    void Promise.all(panels.map((panel) => panel.reload()));
  },
};
let panels: { reload(): Promise<void> }[] = [];

function showLogin(): void {
  mining?.stop();
  mining = null;
  panels = [];
  fill(root, h("h1", {}, "Minequest"), loginView(app, (user) => void showApp(user)));
}

async function showApp(user: User | undefined): Promise<void> {
  const me = user ?? (await mq.api.GET("/api/auth/me")).data?.user;
  mining = miningPanel(app);
  const quests = questsPanel(app);
  const leaderboard = leaderboardPanel(app);
  const wallet = walletPanel(app);
  panels = [mining, quests, leaderboard, wallet];
  fill(
    root,
    h(
      "header",
      {},
      h("h1", {}, "Minequest"),
      h("span", { "data-testid": "player" }, me?.username || me?.email || ""),
      h(
        "button",
        { type: "button", class: "link", "data-testid": "logout", onclick: () => void mq.logout().catch(() => showLogin()) },
        "Log out",
      ),
    ),
    errorLine,
    h("div", { class: "grid" }, mining.element, quests.element, leaderboard.element, wallet.element),
  );
  app.changed();
}

/**
 * The mail's one-time login link (`AUTH_LOGIN_LINK_URL`, e.g.
 * `https://host/app/#challenge={challengeId}&key={key}`) signs in directly.
 */
async function start(): Promise<void> {
  const link = new URLSearchParams(location.hash.slice(1));
  const challenge = link.get("challenge");
  const key = link.get("key");
  if (challenge && key) {
    history.replaceState(null, "", location.pathname);
    try {
      await showApp(await mq.verifyCode(challenge, key));
      return;
    } catch (error) {
      showLogin();
      app.report(error);
      root.prepend(errorLine);
      return;
    }
  }
  if ((await mq.session.tokens()) === null) showLogin();
  else await showApp(undefined);
}

await start();
