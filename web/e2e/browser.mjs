// A new player's first minutes in a real browser (Debian's chromium, driven
// by playwright-core): open an invite link (?ref=REF), sign up and log in with
// the dev code, tap, see the energy fall and the balance rise once the worker
// credits, complete a quest, find themselves on the leaderboards (all-time
// XP, today, this week, around me), claim the daily reward, try a boost they
// cannot afford, see their referral code. Run by tests/e2e/test_web_app.py
// against a running stack; prints what the player saw as one JSON line.
//
//   APP_URL=http://127.0.0.1:8080/app/ EMAIL=… WALLET=0x… USERNAME=… QUEST_NAME=… \
//   REF=<inviter's code> SCREENSHOT=/tmp/web-app.png node e2e/browser.mjs
//
// With INIT_DATA instead: open the app as a Telegram Mini App (window.Telegram
// injected before the page loads, as Telegram's script would) and say who is
// signed in, with no code asked.
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};
const APP_URL = env("APP_URL");
// With LOGIN_LINK: only open the mail's login link and say who is signed in.
const LOGIN_LINK = process.env.LOGIN_LINK;
const INIT_DATA = process.env.INIT_DATA;
const TIMEOUT_MS = 30_000;

const byId = (page, id) => page.locator(`[data-testid="${id}"]`);
const number = (text) => Number(String(text).replace(/[^0-9.]/g, ""));

async function waitForNumber(page, id, predicate, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  let last = "";
  for (;;) {
    last = (await byId(page, id).textContent()) ?? "";
    if (/\d/.test(last) && predicate(number(last))) return number(last);
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)}`);
    await page.waitForTimeout(100);
  }
}

async function openLoginLink(page, consoleErrors) {
  await page.goto(LOGIN_LINK);
  await byId(page, "mining").waitFor();
  console.log(JSON.stringify({ player: await byId(page, "player").textContent(), consoleErrors }));
}

async function insideTelegram(page, consoleErrors) {
  // As Telegram opens a Mini App: the URL's #tgWebAppData, which Telegram's
  // script turns into window.Telegram.WebApp (injected here, TELEGRAM_VIA=window).
  if (env("TELEGRAM_VIA", "window") === "hash") {
    await page.goto(`${APP_URL}#tgWebAppData=${encodeURIComponent(INIT_DATA)}&tgWebAppVersion=7.0`);
  } else {
    await page.addInitScript((initData) => {
      window.Telegram = { WebApp: { initData, initDataUnsafe: {}, ready() {}, expand() {} } };
    }, INIT_DATA);
    await page.goto(APP_URL);
  }
  await byId(page, "mining").waitFor();
  const referralCode = await waitForText(page, "referral-code", /^[A-Za-z2-7]{8}$/, "no referral code");
  console.log(
    JSON.stringify({
      player: await byId(page, "player").textContent(),
      loginShown: await byId(page, "login").count(),
      referralCode,
      error: await byId(page, "error").textContent(),
      consoleErrors,
    }),
  );
}

async function waitForText(page, id, pattern, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const text = ((await byId(page, id).first().textContent()) ?? "").trim();
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(text)}`);
    await page.waitForTimeout(100);
  }
}

/** Show a board (and view), refreshing until the player's own row is on it. */
async function boardWithMe(page, board, view) {
  await byId(page, `board-${board}`).click();
  await byId(page, `view-${view}`).click();
  const list = byId(page, "leaderboard");
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const shown = (await list.getAttribute("data-board")) === board && (await list.getAttribute("data-view")) === view;
    if (shown && (await list.locator('[data-testid="board-own"]').count()) > 0) break;
    if (Date.now() > deadline) throw new Error(`not on the ${board} ${view} board: ${await list.textContent()}`);
    await byId(page, "board-refresh").click();
    await page.waitForTimeout(300);
  }
  return {
    rows: await list.locator("li").allTextContents(),
    own: (await list.locator('[data-testid="board-own"]').textContent()) ?? "",
    ownRank: (await byId(page, "own-rank").textContent()) ?? "",
  };
}

async function firstMinutes(page, consoleErrors) {
  const EMAIL = env("EMAIL");
  const WALLET = env("WALLET");
  const USERNAME = env("USERNAME");
  const QUEST_NAME = env("QUEST_NAME");
  const TAPS = Number(env("TAPS", "5"));
  const SCREENSHOT = env("SCREENSHOT");

  const REF = env("REF");

  await page.goto(`${APP_URL}?ref=${encodeURIComponent(REF)}`);
  const referralField = await byId(page, "referral").inputValue();
  await byId(page, "email").fill(EMAIL);
  await byId(page, "wallet").fill(WALLET);
  await byId(page, "username").fill(USERNAME);
  await byId(page, "send-code").click();
  const devCode = (await byId(page, "dev-code").locator("code").textContent()) ?? "";
  await byId(page, "code").fill(devCode);
  await byId(page, "sign-in").click();

  await byId(page, "mining").waitFor();
  const player = (await byId(page, "player").textContent()) ?? "";
  const energyBefore = await waitForNumber(page, "energy", (n) => n > 0, "energy never shown");
  const balanceBefore = await waitForNumber(page, "balance", () => true, "balance never shown");

  for (let tap = 0; tap < TAPS; tap++) {
    await byId(page, "mine").click();
    await page.waitForTimeout(120);
  }
  await page.waitForFunction(
    () => /taps mined/.test(document.querySelector('[data-testid="click-status"]')?.textContent ?? ""),
    undefined,
    { timeout: TIMEOUT_MS },
  );
  const clickStatus = (await byId(page, "click-status").textContent()) ?? "";
  const energyAfter = await waitForNumber(page, "energy", (n) => n < energyBefore, "energy did not fall");
  const balanceAfter = await waitForNumber(page, "balance", (n) => n > balanceBefore, "balance did not rise");

  const quest = page.locator("[data-quest-id]", { hasText: QUEST_NAME });
  await quest.locator('[data-testid="complete-quest"]').click();
  await quest.locator('[data-testid="quest-done"]').waitFor();
  const totalXp = await waitForNumber(page, "total-xp", (n) => n > 0, "XP did not rise");

  await byId(page, "board-xp").click();
  await byId(page, "view-top").click();
  await byId(page, "leaderboard").locator("li", { hasText: USERNAME }).waitFor();
  await page.waitForFunction(
    () => /#\d+/.test(document.querySelector('[data-testid="own-rank"]')?.textContent ?? ""),
    undefined,
    { timeout: TIMEOUT_MS },
  );
  const ownRank = (await byId(page, "own-rank").textContent()) ?? "";
  const leaderboard = await byId(page, "leaderboard").locator("li").allTextContents();
  const boards = {
    xpAround: await boardWithMe(page, "xp", "around"),
    dayTop: await boardWithMe(page, "day", "top"),
    weekTop: await boardWithMe(page, "week", "top"),
    dayAround: await boardWithMe(page, "day", "around"),
  };

  // Boosts, with their prices; the first costs more than was mined (before
  // the daily reward pays more).
  const boost = page.locator("[data-boost-id]").first();
  await boost.waitFor();
  const boosts = await page.locator("[data-boost-id]").allTextContents();
  await boost.locator('[data-testid="buy-boost"]').click();
  const boostRefusal = await waitForText(page, "boost-result", /\S/, "no answer to the purchase");

  // The daily reward: claimed once, then shown as claimed.
  const streakBefore = await waitForNumber(page, "streak", () => true, "streak never shown");
  const dailyReward = await waitForText(page, "daily-reward", /\d/, "no daily reward");
  await byId(page, "claim-daily").click();
  await page.waitForFunction(
    () => {
      const button = document.querySelector('[data-testid="claim-daily"]');
      return button instanceof HTMLButtonElement && button.disabled && /Claimed/.test(button.textContent ?? "");
    },
    undefined,
    { timeout: TIMEOUT_MS },
  );
  const streakAfter = await waitForNumber(page, "streak", (n) => n > streakBefore, "streak did not grow");
  const dailyNext = await waitForText(page, "daily-next", /Next claim/, "no next claim time");

  const referralCode = await waitForText(page, "referral-code", /^[A-Za-z2-7]{8}$/, "no referral code");
  const inviteLink = (await byId(page, "invite-link").textContent()) ?? "";
  const history = await byId(page, "history").locator("li").allTextContents();
  const depositReference = (await byId(page, "deposit-reference").textContent()) ?? "";

  // More than was mined: the form shows the server's refusal.
  await page.locator('[data-testid="withdrawal-form"] input[name="amount"]').fill("2");
  await page.locator('[data-testid="withdrawal-form"] input[name="address"]').fill("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359");
  await byId(page, "withdraw").click();
  await page.waitForFunction(
    () => /\[\w+\]/.test(document.querySelector('[data-testid="withdrawal-result"]')?.textContent ?? ""),
    undefined,
    { timeout: TIMEOUT_MS },
  );
  const withdrawal = (await byId(page, "withdrawal-result").textContent()) ?? "";

  await byId(page, "board-day").click();
  await byId(page, "view-top").click();
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(
    JSON.stringify({
      devCode,
      player,
      energyBefore,
      energyAfter,
      balanceBefore,
      balanceAfter,
      clickStatus,
      totalXp,
      ownRank,
      leaderboard,
      boards,
      referralField,
      streakBefore,
      streakAfter,
      dailyReward,
      dailyNext,
      boosts,
      boostRefusal,
      referralCode,
      inviteLink,
      history,
      depositReference,
      withdrawal,
      consoleErrors,
    }),
  );
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(TIMEOUT_MS);
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));

  await (LOGIN_LINK ? openLoginLink : INIT_DATA ? insideTelegram : firstMinutes)(page, consoleErrors);
} finally {
  await browser.close();
}
