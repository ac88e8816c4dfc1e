/**
 * Boosts bought with mined coins: each with its level, its effect now and the
 * next level's price. Buying sends the level meant (a stale page is refused
 * with `boost_level_changed`, not charged twice) and one Idempotency-Key; a
 * refusal (`insufficient_funds`, `boost_max_level`) shows on the boost's row.
 */

import { type Schemas, newIdempotencyKey, unwrap } from "@minequest/client";

import { type App, describe, money } from "./context";
import { byId, fill, h } from "./dom";
import type { Panel } from "./quests";

type Boost = Schemas["minequest.mining.v1.Boost"];

export function boostsPanel(app: App): Panel {
  const element = h(
    "section",
    { class: "card boosts", "data-testid": "boosts-panel" },
    h("h2", {}, "Boosts"),
    h("ul", { class: "boosts", "data-testid": "boosts" }),
  );
  /** What the last purchase of each boost answered (kept across reloads). */
  const results = new Map<string, { text: string; refused: boolean }>();

  function row(boost: Boost): HTMLElement {
    const id = boost.id ?? "";
    const level = boost.level ?? 0;
    const maxed = !boost.nextPrice?.amount;
    return h(
      "li",
      { "data-boost-id": id },
      h("span", { class: "name" }, boost.title || id),
      h("span", { class: "muted", "data-testid": "boost-level" }, ` level ${level}/${boost.maxLevel ?? "?"}`),
      h("br"),
      h("span", { class: "muted" }, `now ${boost.effectNow || "0"}${boost.perLevel ? `, +${boost.perLevel} a level` : ""}`),
      h("br"),
      h(
        "button",
        { type: "button", "data-testid": "buy-boost", disabled: maxed, onclick: () => void buy(id, level + 1) },
        maxed ? "Max level" : `Buy for ${money(boost.nextPrice)}`,
      ),
      h(
        "span",
        { class: results.get(id)?.refused ? "result error" : "result done", "data-testid": "boost-result", role: "status" },
        results.get(id)?.text ?? "",
      ),
    );
  }

  async function buy(boostId: string, level: number): Promise<void> {
    try {
      const bought = await unwrap(
        app.mq.api.POST("/api/boosts/{boostId}/purchase", {
          params: { path: { boostId }, header: { "Idempotency-Key": newIdempotencyKey() } },
          body: { level },
        }),
      );
      results.set(boostId, { text: `Bought level ${bought.level ?? level} for ${money(bought.price)}`, refused: false });
    } catch (error) {
      results.set(boostId, { text: `Not bought: ${describe(error)}`, refused: true });
    }
    app.changed();
  }

  async function reload(): Promise<void> {
    try {
      const answer = await unwrap(app.mq.api.GET("/api/boosts", { cache: "no-store" }));
      const boosts = answer.boosts ?? [];
      fill(byId(element, "boosts"), ...(boosts.length ? boosts.map(row) : [h("li", { class: "muted" }, "No boosts on sale.")]));
    } catch (error) {
      app.report(error);
    }
  }

  return { element, reload };
}
