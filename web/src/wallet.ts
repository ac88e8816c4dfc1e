/** The wallet: balances, history, the deposit reference and a withdrawal form. */

import { type Schemas, newIdempotencyKey, type paths, unwrap } from "@minequest/client";

import type { App } from "./context";
import { describe } from "./context";
import { byId, fill, h } from "./dom";
import type { Panel } from "./quests";

type LedgerEntry = Schemas["minequest.wallet.v1.LedgerEntry"];
type Withdrawal = NonNullable<
  paths["/api/wallet/withdrawals"]["post"]["requestBody"]
>["content"]["application/json"];

/** The chains offered (the contract's enum; `satisfies` fails the build if one goes). */
const CHAINS = ["ethereum", "polygon", "arbitrum", "optimism", "base", "bsc", "avalanche", "tron"] as const satisfies readonly Withdrawal["chain"][];

const KIND_NAMES: Record<string, string> = {
  ENTRY_KIND_CREDIT: "credit",
  ENTRY_KIND_DEBIT: "debit",
  ENTRY_KIND_HOLD: "hold",
  ENTRY_KIND_RELEASE: "release",
  ENTRY_KIND_SPEND: "spend",
};

export function walletPanel(app: App): Panel {
  const result = h("p", { "data-testid": "withdrawal-result", role: "status" });
  const form = h(
    "form",
    {
      "data-testid": "withdrawal-form",
      onsubmit: (event) => {
        event.preventDefault();
        void withdraw();
      },
    },
    h("h3", {}, "Withdraw"),
    h("label", {}, "Currency", h("input", { name: "currency", value: "MQC", required: true, size: "6" })),
    h("label", {}, "Amount", h("input", { name: "amount", inputmode: "decimal", required: true, placeholder: "1.5" })),
    h("label", {}, "Chain", h("select", { name: "chain" }, ...CHAINS.map((chain) => h("option", { value: chain }, chain)))),
    h("label", {}, "Address", h("input", { name: "address", required: true, placeholder: "0x…" })),
    h("button", { type: "submit", "data-testid": "withdraw" }, "Request withdrawal"),
    result,
  );
  const element = h(
    "section",
    { class: "card wallet", "data-testid": "wallet-panel" },
    h("h2", {}, "Wallet"),
    h("ul", { "data-testid": "balances" }),
    h("h3", {}, "Deposit"),
    h("p", {}, "Your reference ", h("code", { "data-testid": "deposit-reference" }, "…")),
    h("ul", { "data-testid": "deposit-wallets", class: "muted" }),
    form,
    h("h3", {}, "History"),
    h("ul", { "data-testid": "history", class: "history" }),
  );
  const field = (name: string) => (form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement).value.trim();

  async function withdraw(): Promise<void> {
    result.textContent = "";
    try {
      const answer = await unwrap(
        app.mq.api.POST("/api/wallet/withdrawals", {
          params: { header: { "Idempotency-Key": newIdempotencyKey() } },
          body: {
            amount: { currency: field("currency").toUpperCase(), amount: field("amount") },
            chain: field("chain") as Withdrawal["chain"],
            address: field("address"),
          },
        }),
      );
      const withdrawal = answer.withdrawal;
      result.textContent = `Withdrawal ${withdrawal?.id ?? ""} ${withdrawal?.state?.replace("WITHDRAWAL_STATE_", "").toLowerCase() ?? "requested"}`;
      app.changed();
    } catch (error) {
      result.textContent = describe(error);
    }
  }

  const entry = (item: LedgerEntry) =>
    h(
      "li",
      {},
      h("span", { class: "kind" }, KIND_NAMES[item.kind ?? ""] ?? item.kind ?? ""),
      ` ${item.amount?.amount ?? ""} ${item.amount?.currency ?? ""} `,
      h("span", { class: "muted" }, `${item.source ?? ""} · ${item.createdAt ? new Date(item.createdAt).toLocaleString() : ""}`),
    );

  async function reload(): Promise<void> {
    try {
      const [balances, history, deposit] = await Promise.all([
        unwrap(app.mq.api.GET("/api/wallet/balance", { cache: "no-store" })),
        unwrap(app.mq.api.GET("/api/wallet/history", { cache: "no-store" })),
        unwrap(app.mq.api.GET("/api/wallet/deposit-reference")),
      ]);
      const rows = balances.balances ?? [];
      fill(
        byId(element, "balances"),
        ...(rows.length
          ? rows.map((row) =>
              h("li", {}, h("strong", {}, `${row.available ?? "0"} ${row.currency ?? ""}`), row.held && row.held !== "0" && Number(row.held) !== 0 ? ` (${row.held} held)` : ""),
            )
          : [h("li", { class: "muted" }, "Nothing yet: mine some coins.")]),
      );
      const entries = history.entries ?? [];
      fill(byId(element, "history"), ...(entries.length ? entries.map(entry) : [h("li", { class: "muted" }, "No entries yet.")]));
      byId(element, "deposit-reference").textContent = deposit.depositReference ?? "";
      fill(
        byId(element, "deposit-wallets"),
        ...(deposit.wallets ?? []).map((wallet) => h("li", {}, `${wallet.currency} on ${wallet.chain}: `, h("code", {}, wallet.address ?? ""))),
      );
    } catch (error) {
      app.report(error);
    }
  }

  return { element, reload };
}
