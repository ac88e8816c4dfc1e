/**
 * The mining panel: the button (taps batched by {@link TapBatcher}, one
 * Idempotency-Key per batch), live energy (the server's figure, regenerated
 * on screen until `energyFullAt`, less the taps not yet counted), the last
 * batch's status (queued → done, polled by its key) and the MQC balance.
 */

import { ApiProblem, type Schemas, newIdempotencyKey, unwrap } from "@minequest/client";

import type { App } from "./context";
import { byId, h } from "./dom";
import { type Batch, TapBatcher } from "./taps";

type MiningStatus = Schemas["minequest.mining.v1.GetMiningStatusResponse"];

const STATUS_POLL_MS = 500;
const STATUS_POLL_LIMIT = 60;
const REFRESH_MS = 5_000;

export interface MiningPanel {
  element: HTMLElement;
  /** Reload the energy and the balance from the server. */
  reload(): Promise<void>;
  stop(): void;
}

export function miningPanel(app: App): MiningPanel {
  let server: { status: MiningStatus; at: number } | null = null;
  let inFlight = 0;

  const element = h(
    "section",
    { class: "card mining", "data-testid": "mining" },
    h("h2", {}, "Mine"),
    h(
      "p",
      { class: "energy" },
      "Energy ",
      h("strong", { "data-testid": "energy" }, "…"),
      " / ",
      h("span", { "data-testid": "max-energy" }, "…"),
    ),
    h("progress", { "data-testid": "energy-bar", max: "1", value: "0" }),
    h("button", { class: "mine", type: "button", "data-testid": "mine", onclick: () => tap() }, "Mine"),
    h("p", { "data-testid": "pending" }),
    h("p", { class: "status", "data-testid": "click-status", "aria-live": "polite" }, "Tap to mine."),
    h("p", {}, "Balance ", h("strong", { "data-testid": "balance" }, "…")),
    h("p", { class: "muted" }, "Taps today ", h("span", { "data-testid": "today-taps" }, "…")),
  );
  const say = (id: string, text: string) => {
    byId(element, id).textContent = text;
  };

  const batcher = new TapBatcher({ send: (batch) => void send(batch), newKey: newIdempotencyKey });

  function energyNow(): number | null {
    if (server === null) return null;
    const { energy = 0, maxEnergy = 0, energyFullAt } = server.status;
    const full = energyFullAt ? Date.parse(energyFullAt) : server.at;
    const regen =
      full > server.at ? ((maxEnergy - energy) * (Date.now() - server.at)) / (full - server.at) : 0;
    return Math.max(0, Math.min(maxEnergy, Math.floor(energy + regen)) - inFlight - batcher.pending);
  }

  function render(): void {
    const energy = energyNow();
    const max = server?.status.maxEnergy ?? 0;
    say("energy", energy === null ? "…" : String(energy));
    say("max-energy", energy === null ? "…" : String(max));
    const bar = byId<HTMLProgressElement>(element, "energy-bar");
    bar.value = energy === null || max === 0 ? 0 : energy / max;
    say("pending", batcher.pending ? `${batcher.pending} taps waiting to be sent` : "");
  }

  function tap(): void {
    if (energyNow() === 0) {
      say("click-status", "Out of energy: it refills over time.");
      return;
    }
    batcher.tap();
    render();
  }

  async function send(batch: Batch): Promise<void> {
    inFlight += batch.count;
    render();
    say("click-status", `Sending ${batch.count} taps…`);
    try {
      const queued = await unwrap(
        app.mq.api.POST("/api/mining/click", {
          params: { header: { "Idempotency-Key": batch.key } },
          body: { count: batch.count, firstTapAt: batch.firstTapAt, lastTapAt: batch.lastTapAt },
        }),
      );
      const accepted = queued.acceptedTaps ?? batch.count;
      const refused = batch.count - accepted;
      say("click-status", `${accepted} taps queued${refused ? ` (${refused} over the tap rate)` : ""}`);
      await reloadStatus();
      inFlight -= batch.count;
      render();
      await follow(batch.key, accepted);
    } catch (error) {
      inFlight -= batch.count;
      render();
      say("click-status", error instanceof ApiProblem ? `Not mined: ${error.detail} [${error.code}]` : "Not mined");
      app.report(error);
    }
  }

  /** Poll the batch's status by its key until the worker has credited it. */
  async function follow(key: string, accepted: number): Promise<void> {
    for (let poll = 0; poll < STATUS_POLL_LIMIT; poll++) {
      const { data, error, response } = await app.mq.api.GET("/api/mining/click/status", {
        params: { query: { key } },
        cache: "no-store",
      });
      if (response.status === 200 && data) {
        const reward = data.reward ? ` +${data.reward.amount} ${data.reward.currency}` : "";
        say("click-status", `${data.acceptedTaps ?? accepted} taps mined:${reward}`);
        app.changed();
        return;
      }
      if (response.status !== 202) {
        const detail = (error as { detail?: string } | undefined)?.detail ?? response.statusText;
        say("click-status", `Not mined: ${detail}`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, STATUS_POLL_MS));
    }
    say("click-status", `${accepted} taps still queued`);
  }

  async function reloadStatus(): Promise<void> {
    const status = await unwrap(app.mq.api.GET("/api/mining/status", { cache: "no-store" }));
    server = { status, at: Date.now() };
    say("today-taps", String(status.todayTaps ?? "0"));
    render();
  }

  async function reloadBalance(): Promise<void> {
    const answer = await unwrap(app.mq.api.GET("/api/wallet/balance", { cache: "no-store" }));
    const mqc = (answer.balances ?? []).find((balance) => balance.currency === "MQC");
    say("balance", `${mqc?.available ?? "0"} MQC`);
  }

  async function reload(): Promise<void> {
    try {
      await Promise.all([reloadStatus(), reloadBalance()]);
    } catch (error) {
      app.report(error);
    }
  }

  const ticker = setInterval(render, 1_000);
  const refresher = setInterval(() => void reloadStatus().catch(() => {}), REFRESH_MS);
  const hide = () => batcher.flush();
  addEventListener("pagehide", hide);

  return {
    element,
    reload,
    stop() {
      batcher.flush();
      clearInterval(ticker);
      clearInterval(refresher);
      removeEventListener("pagehide", hide);
    },
  };
}
