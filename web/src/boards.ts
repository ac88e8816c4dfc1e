/**
 * The leaderboards: all-time XP (quests), and coins mined today and this week
 * (mining; days and ISO weeks as the server counts them), each as the top
 * ten or "around me" (the players just above and below, the player among
 * them). The player's own row is marked; a board the player is not on yet
 * says so. Boards reload when something changed and on Refresh.
 */

import { type Schemas, unwrap } from "@minequest/client";

import { type App, money } from "./context";
import { byId, fill, h } from "./dom";
import type { Panel } from "./quests";

type Board = "xp" | "day" | "week";
type View = "top" | "around";
type XpEntry = Schemas["minequest.quests.v1.LeaderboardEntry"];
type MinedEntry = Schemas["minequest.mining.v1.MinedLeaderboardEntry"];
type Period = NonNullable<Schemas["minequest.mining.v1.GetMinedLeaderboardResponse"]["period"]>;

const BOARDS: Record<Board, string> = { xp: "All-time XP", day: "Today", week: "This week" };
const PERIODS: Record<Exclude<Board, "xp">, Period> = { day: "LEADERBOARD_PERIOD_DAY", week: "LEADERBOARD_PERIOD_WEEK" };
const VIEWS: Record<View, string> = { top: "Top 10", around: "Around me" };
const LIMIT = 10;
const AROUND = 3;

/** A row as every board shows it. */
interface Row {
  rank?: string;
  userId?: string;
  username?: string;
  score: string;
}

const xpRow = (entry: XpEntry): Row => ({ ...entry, score: `${entry.totalXp ?? "0"} XP` });
const minedRow = (entry: MinedEntry): Row => ({ ...entry, score: `${money(entry.mined)} mined` });

export function boardsPanel(app: App): Panel {
  let board: Board = "xp";
  let view: View = "top";
  const tab = <T extends string>(group: string, value: T, label: string, pick: (value: T) => void) =>
    h("button", { type: "button", role: "tab", class: "tab", "data-group": group, "data-value": value, "data-testid": `${group}-${value}`, onclick: () => pick(value) }, label);
  const pickBoard = (value: Board) => {
    board = value;
    void reload();
  };
  const pickView = (value: View) => {
    view = value;
    void reload();
  };
  const element = h(
    "section",
    { class: "card leaderboard", "data-testid": "leaderboard-panel" },
    h("h2", {}, "Leaderboards"),
    h("div", { class: "tabs", role: "tablist" }, ...Object.entries(BOARDS).map(([value, label]) => tab("board", value as Board, label, pickBoard))),
    h(
      "div",
      { class: "tabs", role: "tablist" },
      ...Object.entries(VIEWS).map(([value, label]) => tab("view", value as View, label, pickView)),
      h("button", { type: "button", class: "link", "data-testid": "board-refresh", onclick: () => void reload() }, "Refresh"),
    ),
    h("ol", { class: "board", "data-testid": "leaderboard", "data-board": "xp", "data-view": "top" }),
    h("p", { "data-testid": "own-rank", class: "muted" }),
  );
  let me = "";
  /** Only the answer to the latest reload is shown (tabs clicked quickly). */
  let asked = 0;
  const isMe = (row: Row) => me !== "" && row.userId === me;
  const name = (row: Row) => row.username || `player ${row.userId?.slice(0, 6) ?? "?"}`;

  async function rows(): Promise<{ rows: Row[]; own: Row | undefined }> {
    const cache = "no-store" as const;
    if (board === "xp" && view === "top") {
      const answer = await unwrap(app.mq.api.GET("/api/quests/leaderboard", { params: { query: { limit: LIMIT } }, cache }));
      return { rows: (answer.entries ?? []).map(xpRow), own: answer.own?.rank ? xpRow(answer.own) : undefined };
    }
    if (board === "xp") {
      const answer = await unwrap(app.mq.api.GET("/api/quests/leaderboard/around-me", { params: { query: { count: AROUND } }, cache }));
      return { rows: answer.entries.map(xpRow), own: answer.own ? xpRow(answer.own) : undefined };
    }
    const period = PERIODS[board];
    const answer =
      view === "top"
        ? await unwrap(app.mq.api.GET("/api/mining/leaderboard", { params: { query: { period, limit: LIMIT } }, cache }))
        : await unwrap(app.mq.api.GET("/api/mining/leaderboard/around-me", { params: { query: { period, count: AROUND } }, cache }));
    const entries = view === "top" ? answer.entries : answer.around;
    return { rows: (entries ?? []).map(minedRow), own: answer.own?.rank && answer.own.rank !== "0" ? minedRow(answer.own) : undefined };
  }

  async function reload(): Promise<void> {
    for (const button of element.querySelectorAll<HTMLButtonElement>("button.tab")) {
      const on = button.dataset.value === (button.dataset.group === "board" ? board : view);
      button.classList.toggle("on", on);
      button.setAttribute("aria-selected", String(on));
    }
    const list = byId(element, "leaderboard");
    // The list says which board it shows once it shows it: until the answer
    // comes, it still holds the previous board's rows and is marked busy.
    list.setAttribute("aria-busy", "true");
    const mine = ++asked;
    try {
      const shown = await rows();
      if (mine !== asked) return;
      list.dataset.board = board;
      list.dataset.view = view;
      if (shown.own?.userId) me = shown.own.userId;
      const empty = board === "xp" ? "Nobody yet: complete a quest." : "Nobody yet: mine some coins.";
      fill(
        list,
        ...(shown.rows.length
          ? shown.rows.map((row) =>
              h(
                "li",
                isMe(row) ? { class: "me", "data-testid": "board-own" } : {},
                h("span", { class: "rank" }, `#${row.rank ?? "?"}`),
                " ",
                h("span", { class: "name" }, isMe(row) ? `${name(row)} (you)` : name(row)),
                ` ${row.score}`,
              ),
            )
          : [h("li", { class: "muted" }, view === "around" ? "You are not on this board yet." : empty)]),
      );
      byId(element, "own-rank").textContent = shown.own
        ? `You: #${shown.own.rank} with ${shown.own.score}`
        : "You are not ranked yet.";
    } catch (error) {
      app.report(error);
    } finally {
      if (mine === asked) list.removeAttribute("aria-busy");
    }
  }

  return { element, reload };
}
