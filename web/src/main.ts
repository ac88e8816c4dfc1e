/**
 * The Minequest web app: sign in (a one-time code, or inside Telegram the
 * Mini App's initData), then mine, the daily reward, boosts, quests,
 * referrals, the leaderboards and the wallet, all through @minequest/client
 * (generated from openapi.json).
 */

import "./style.css";

import type { User } from "@minequest/client";

import { boardsPanel } from "./boards";
import { boostsPanel } from "./boosts";
import { type App, describe, newClient } from "./context";
import { dailyPanel } from "./daily";
import { fill, h } from "./dom";
import { loginView } from "./login";
import { type MiningPanel, miningPanel } from "./mining";
import { questsPanel } from "./quests";
import { referralsPanel } from "./referrals";
import { telegramLaunch } from "./telegram";
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
let panels: { element: HTMLElement; reload(): Promise<void> }[] = [];

function showLogin(): void {
  mining?.stop();
  mining = null;
  panels = [];
  fill(root, h("h1", {}, "Minequest"), loginView(app, (user) => void showApp(user)));
}

async function showApp(user: User | undefined): Promise<void> {
  const me = user ?? (await mq.api.GET("/api/auth/me")).data?.user;
  mining = miningPanel(app);
  panels = [
    mining,
    dailyPanel(app),
    boostsPanel(app),
    questsPanel(app),
    boardsPanel(app),
    referralsPanel(app),
    walletPanel(app),
  ];
  fill(
    root,
    h(
      "header",
      {},
      h("h1", {}, "Minequest"),
      h("span", { "data-testid": "player" }, me?.username || me?.email || (me?.telegramId ? `Telegram ${me.telegramId}` : "")),
      h(
        "button",
        { type: "button", class: "link", "data-testid": "logout", onclick: () => void mq.logout().catch(() => showLogin()) },
        "Log out",
      ),
    ),
    errorLine,
    h("div", { class: "grid" }, ...panels.map((panel) => panel.element)),
  );
  app.changed();
}

/** A login that did not go through: the form, with what went wrong above it. */
function refused(error: unknown): void {
  showLogin();
  app.report(error);
  root.prepend(errorLine);
}

/**
 * Inside Telegram the Mini App's initData logs in, every time it opens (the
 * stored tokens may be another Telegram account's, on a shared device).
 * Otherwise the mail's one-time login link (`AUTH_LOGIN_LINK_URL`, e.g.
 * `https://host/app/#challenge={challengeId}&key={key}`) signs in directly.
 */
async function start(): Promise<void> {
  const telegram = telegramLaunch();
  if (telegram !== null) {
    try {
      const answer = await mq.telegramLogin(telegram.initData);
      await showApp(answer.user);
      if (answer.referralError) app.report(new Error(`The invite link's code was not used (${answer.referralError}).`));
      return;
    } catch (error) {
      refused(error);
      return;
    }
  }
  const link = new URLSearchParams(location.hash.slice(1));
  const challenge = link.get("challenge");
  const key = link.get("key");
  if (challenge && key) {
    history.replaceState(null, "", location.pathname);
    try {
      await showApp(await mq.verifyCode(challenge, key));
      return;
    } catch (error) {
      refused(error);
      return;
    }
  }
  if ((await mq.session.tokens()) === null) showLogin();
  else await showApp(undefined);
}

await start();
