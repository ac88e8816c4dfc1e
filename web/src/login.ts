/**
 * Sign in with a one-time code. A new player gives a wallet address too and
 * is registered first. On a dev server (ENABLE_DEV_OTP_FALLBACK) the answer
 * carries the code, and the page shows it instead of a mail. An invite link
 * (`?ref=<code>`) fills in the referral code a new player registers with.
 */

import { ConflictProblem, type User, unwrap } from "@minequest/client";

import { type App, describe } from "./context";
import { byId, h } from "./dom";
import { referralFromUrl } from "./referrals";

export function loginView(app: App, signedIn: (user: User | undefined) => void): HTMLElement {
  let challengeId = "";
  const error = h("p", { class: "error", "data-testid": "login-error", role: "alert" });
  const dev = h("p", { class: "dev", "data-testid": "dev-code", hidden: true });

  const contact = h(
    "form",
    {
      "data-testid": "contact-form",
      onsubmit: (event) => {
        event.preventDefault();
        void sendCode();
      },
    },
    h("label", {}, "Email", h("input", { name: "email", type: "email", required: true, "data-testid": "email" })),
    h(
      "label",
      {},
      "Wallet address (new players)",
      h("input", { name: "wallet", placeholder: "0x…", "data-testid": "wallet", autocomplete: "off" }),
    ),
    h("label", {}, "Username (optional)", h("input", { name: "username", "data-testid": "username" })),
    h(
      "label",
      {},
      "Referral code (new players, optional)",
      h("input", { name: "referral", value: referralFromUrl(), "data-testid": "referral", autocomplete: "off" }),
    ),
    h("button", { type: "submit", "data-testid": "send-code" }, "Send code"),
  );
  const code = h(
    "form",
    {
      "data-testid": "code-form",
      hidden: true,
      onsubmit: (event) => {
        event.preventDefault();
        void verify();
      },
    },
    h(
      "label",
      {},
      "Code from the mail",
      h("input", { name: "code", inputmode: "numeric", required: true, "data-testid": "code", autocomplete: "one-time-code" }),
    ),
    dev,
    h("button", { type: "submit", "data-testid": "sign-in" }, "Sign in"),
  );

  const field = (form: HTMLFormElement, name: string) =>
    (form.elements.namedItem(name) as HTMLInputElement).value.trim();

  async function sendCode(): Promise<void> {
    error.textContent = "";
    const email = field(contact, "email");
    const wallet = field(contact, "wallet");
    const username = field(contact, "username");
    const referralCode = field(contact, "referral");
    try {
      if (wallet) {
        try {
          await unwrap(
            app.mq.api.POST("/api/auth/register", {
              body: {
                walletAddress: wallet,
                email,
                ...(username ? { username } : {}),
                ...(referralCode ? { referralCode } : {}),
              },
            }),
          );
        } catch (problem) {
          // Registered before: signing in is all that is left to do.
          if (!(problem instanceof ConflictProblem)) throw problem;
        }
      }
      const challenge = await app.mq.requestCode({ email });
      challengeId = challenge.challengeId ?? "";
      if (challenge.devCode) {
        dev.hidden = false;
        dev.replaceChildren("Dev mode, no mail sent: your code is ", h("code", {}, challenge.devCode));
      }
      contact.hidden = true;
      code.hidden = false;
      byId<HTMLInputElement>(code, "code").focus();
    } catch (problem) {
      error.textContent = describe(problem);
    }
  }

  async function verify(): Promise<void> {
    error.textContent = "";
    try {
      signedIn(await app.mq.verifyCode(challengeId, field(code, "code")));
    } catch (problem) {
      error.textContent = describe(problem);
    }
  }

  return h("section", { class: "card login", "data-testid": "login" }, h("h2", {}, "Sign in"), contact, code, error);
}
