/**
 * Referrals: the player's code, an invite link that opens the app's sign-up
 * with the code filled in (`?ref=<code>`), the Telegram link when the build
 * knows the Mini App's (`TELEGRAM_MINI_APP_URL`, `?startapp=<code>`, which
 * Telegram hands over as `start_param`), how many joined and what their mining
 * earned the player.
 */

import { unwrap } from "@minequest/client";

import { type App, TELEGRAM_MINI_APP_URL, money } from "./context";
import { byId, fill, h } from "./dom";
import type { Panel } from "./quests";

/** The code a `?ref=` link carries, for the sign-up form. */
export const referralFromUrl = () => new URLSearchParams(location.search).get("ref") ?? "";

export function inviteLink(code: string): string {
  const url = new URL(location.pathname, location.origin);
  url.searchParams.set("ref", code);
  return url.toString();
}

export function referralsPanel(app: App): Panel {
  const links = h("ul", { class: "links", "data-testid": "invite-links" });
  const element = h(
    "section",
    { class: "card referrals", "data-testid": "referrals-panel" },
    h("h2", {}, "Invite friends"),
    h("p", {}, "Your code ", h("code", { class: "big", "data-testid": "referral-code" }, "…")),
    links,
    h(
      "p",
      {},
      h("strong", { "data-testid": "invited" }, "…"),
      " joined · earned ",
      h("strong", { "data-testid": "referral-earned" }, "…"),
    ),
    h("p", { class: "muted" }, "You earn a share of what they mine, and a bonus when they first mine."),
  );

  function linkRow(label: string, url: string, id: string): HTMLElement {
    const copied = h("span", { class: "muted" });
    const copy = async () => {
      try {
        await navigator.clipboard.writeText(url);
        copied.textContent = " copied";
      } catch {
        getSelection()?.selectAllChildren(byId(item, id));
        copied.textContent = " selected: copy it";
      }
    };
    const item = h(
      "li",
      {},
      `${label} `,
      h("code", { "data-testid": id }, url),
      " ",
      h("button", { type: "button", class: "small", onclick: () => void copy() }, "Copy"),
      copied,
    );
    return item;
  }

  async function reload(): Promise<void> {
    try {
      const me = await unwrap(app.mq.api.GET("/api/referrals/me", { cache: "no-store" }));
      const code = me.referralCode;
      byId(element, "referral-code").textContent = code;
      byId(element, "invited").textContent = String(me.invited);
      byId(element, "referral-earned").textContent = money(me.earned);
      fill(
        links,
        linkRow("Link", inviteLink(code), "invite-link"),
        TELEGRAM_MINI_APP_URL && linkRow("Telegram", `${TELEGRAM_MINI_APP_URL}?startapp=${code}`, "telegram-link"),
      );
    } catch (error) {
      app.report(error);
    }
  }

  return { element, reload };
}
