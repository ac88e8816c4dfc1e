/** Quests with their completion (one Idempotency-Key per completion). */

import { ConflictProblem, type Schemas, newIdempotencyKey, unwrap } from "@minequest/client";

import type { App } from "./context";
import { byId, fill, h } from "./dom";

type QuestProgress = Schemas["minequest.quests.v1.QuestProgress"];
/**
 * What the list shows of a quest. The generated `Quest` is `unknown`:
 * openapi-typescript turns the schema's `anyOf` (XP, coins or both) into a
 * union with `unknown`, so the fields read here are named once, by hand.
 */
interface QuestView {
  id?: string;
  name?: string;
  xpReward?: string;
  coinReward?: Schemas["minequest.common.v1.Money"];
}

export interface Panel {
  element: HTMLElement;
  reload(): Promise<void>;
}

export function questsPanel(app: App): Panel {
  const element = h(
    "section",
    { class: "card quests", "data-testid": "quests-panel" },
    h("h2", {}, "Quests"),
    h("p", { class: "muted" }, "XP ", h("strong", { "data-testid": "total-xp" }, "…")),
    h("ul", { "data-testid": "quests" }),
  );

  function row(progress: QuestProgress): HTMLElement {
    const quest = progress.quest as QuestView | undefined;
    const id = quest?.id ?? "";
    const coins = quest?.coinReward;
    const reward = coins?.amount ? ` · ${coins.amount} ${coins.currency}` : "";
    const action = progress.completed
      ? h("span", { class: "done", "data-testid": "quest-done" }, "✓ Completed")
      : h(
          "button",
          {
            type: "button",
            "data-testid": "complete-quest",
            disabled: progress.available === false,
            title: progress.available === false ? "Complete the quests before it first" : "",
            onclick: () => void complete(id),
          },
          "Complete",
        );
    return h(
      "li",
      { "data-quest-id": id },
      h("span", { class: "name" }, quest?.name ?? id),
      h("span", { class: "muted" }, ` ${quest?.xpReward ?? "0"} XP${reward} `),
      action,
    );
  }

  async function complete(questId: string): Promise<void> {
    try {
      await unwrap(
        app.mq.api.POST("/api/quests/{questId}/complete", {
          params: { path: { questId }, header: { "Idempotency-Key": newIdempotencyKey() } },
        }),
      );
    } catch (error) {
      // Completed already (another tab, an earlier try): the list will say so.
      if (!(error instanceof ConflictProblem)) app.report(error);
    }
    app.changed();
  }

  async function reload(): Promise<void> {
    try {
      const answer = await unwrap(app.mq.api.GET("/api/quests", { cache: "no-store" }));
      byId(element, "total-xp").textContent = String(answer.totalXp ?? "0");
      const quests = answer.quests ?? [];
      fill(
        byId(element, "quests"),
        ...(quests.length ? quests.map(row) : [h("li", { class: "muted" }, "No quests yet.")]),
      );
    } catch (error) {
      app.report(error);
    }
  }

  return { element, reload };
}
