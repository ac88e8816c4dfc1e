/** The mining button's debounce, on a hand-driven clock: node --test. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { type Batch, TapBatcher } from "../src/taps.js";

function rig(options: { maxTaps?: number; maxOpenMs?: number } = {}) {
  let now = Date.parse("2026-12-01T10:00:00.000Z");
  let timer: { fn: () => void; at: number } | null = null;
  let keys = 0;
  const sent: Batch[] = [];
  const batcher = new TapBatcher({
    send: (batch) => sent.push(batch),
    newKey: () => `key-${++keys}`,
    quietMs: 400,
    now: () => now,
    setTimer: (fn, ms) => {
      timer = { fn, at: now + ms };
      return timer;
    },
    clearTimer: () => {
      timer = null;
    },
    ...options,
  });
  const advance = (ms: number) => {
    now += ms;
    if (timer !== null && timer.at <= now) {
      const { fn } = timer;
      timer = null;
      fn();
    }
  };
  return { batcher, sent, advance };
}

describe("the tap batcher", () => {
  it("sends the taps of one burst as one batch, with its first and last tap times", () => {
    const { batcher, sent, advance } = rig();
    for (let i = 0; i < 5; i++) {
      batcher.tap();
      advance(100);
    }
    assert.equal(sent.length, 0);
    assert.equal(batcher.pending, 5);
    advance(400);
    assert.deepEqual(sent, [
      { key: "key-1", count: 5, firstTapAt: "2026-12-01T10:00:00.000Z", lastTapAt: "2026-12-01T10:00:00.400Z" },
    ]);
    assert.equal(batcher.pending, 0);
  });

  it("gives every batch its own key", () => {
    const { batcher, sent, advance } = rig();
    batcher.tap();
    advance(500);
    batcher.tap();
    batcher.tap();
    advance(500);
    assert.deepEqual(
      sent.map((batch) => [batch.key, batch.count]),
      [["key-1", 1], ["key-2", 2]],
    );
  });

  it("sends at once when a batch is full or has been open too long", () => {
    const full = rig({ maxTaps: 3 });
    for (let i = 0; i < 3; i++) full.batcher.tap();
    assert.deepEqual(full.sent.map((batch) => batch.count), [3]);

    const long = rig({ maxOpenMs: 1_000 });
    for (let i = 0; i < 12; i++) {
      long.batcher.tap();
      long.advance(100);
    }
    assert.deepEqual(long.sent.map((batch) => batch.count), [11]);
    assert.equal(long.batcher.pending, 1);
  });

  it("sends nothing when nothing was tapped", () => {
    const { batcher, sent } = rig();
    batcher.flush();
    assert.deepEqual(sent, []);
  });
});
