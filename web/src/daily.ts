/**
 * The daily reward: the streak, today's reward and a Claim button (one
 * Idempotency-Key per click, so a retried claim is the same claim). Claimed,
 * it shows when the next claim opens; a claim made elsewhere the same day (409
 * `already_claimed`) just reloads into the same state.
 */

import { ConflictProblem, newIdempotencyKey, unwrap } from "@minequest/client";

import { type App, money } from "./context";
import { byId, h } from "./dom";
import type { Panel } from "./quests";

export function dailyPanel(app: App): Panel {
  const claim = h("button", { type: "button", "data-testid": "claim-daily", onclick: () => void claimToday() }, "Claim");
  const element = h(
    "section",
    { class: "card daily", "data-testid": "daily-panel" },
    h("h2", {}, "Daily reward"),
    h("p", {}, "Streak ", h("strong", { "data-testid": "streak" }, "…"), " days"),
    h("p", {}, "Today's reward ", h("strong", { "data-testid": "daily-reward" }, "…")),
    claim,
    h("p", { class: "muted", "data-testid": "daily-next" }),
  );

  async function claimToday(): Promise<void> {
    claim.disabled = true;
    try {
      await unwrap(app.mq.api.POST("/api/rewards/daily", { params: { header: { "Idempotency-Key": newIdempotencyKey() } } }));
    } catch (error) {
      if (!(error instanceof ConflictProblem)) app.report(error);
    }
    app.changed();
  }

  async function reload(): Promise<void> {
    try {
      const daily = await unwrap(app.mq.api.GET("/api/rewards/daily", { cache: "no-store" }));
      const claimed = daily.claimedToday === true;
      byId(element, "streak").textContent = String(daily.streak ?? 0);
      byId(element, "daily-reward").textContent = money(claimed ? daily.claim?.reward ?? daily.todayReward : daily.todayReward);
      claim.disabled = claimed;
      claim.textContent = claimed ? "✓ Claimed" : "Claim";
      const next = daily.nextClaimAt ? new Date(daily.nextClaimAt).toLocaleString() : "";
      byId(element, "daily-next").textContent = claimed
        ? `Next claim ${next ? `from ${next}` : "tomorrow"}: ${money(daily.nextReward)}. Miss a day and the streak starts over.`
        : "Claim every day to grow the streak.";
    } catch (error) {
      app.report(error);
    }
  }

  return { element, reload };
}
