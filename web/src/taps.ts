/**
 * The mining button's debounce: taps are counted locally and sent as one
 * batch (`count`, `firstTapAt`, `lastTapAt`) once the player pauses
 * (`quietMs` after the last tap), a batch has been open for `maxOpenMs`, or it
 * holds `maxTaps`. Each batch gets one Idempotency-Key, made when it is sent;
 * the client reuses it on every retry, so a batch is mined once.
 */

export interface Batch {
  key: string;
  count: number;
  firstTapAt: string;
  lastTapAt: string;
}

export interface TapBatcherOptions {
  send: (batch: Batch) => void;
  newKey: () => string;
  quietMs?: number;
  maxOpenMs?: number;
  maxTaps?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export class TapBatcher {
  private count = 0;
  private first = 0;
  private last = 0;
  private timer: unknown = null;
  private readonly quietMs: number;
  private readonly maxOpenMs: number;
  private readonly maxTaps: number;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(private readonly options: TapBatcherOptions) {
    this.quietMs = options.quietMs ?? 400;
    this.maxOpenMs = options.maxOpenMs ?? 2_000;
    this.maxTaps = options.maxTaps ?? 100;
    this.now = options.now ?? Date.now;
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimer ?? ((handle) => clearTimeout(handle as number));
  }

  /** Taps counted but not sent yet. */
  get pending(): number {
    return this.count;
  }

  tap(): void {
    const at = this.now();
    if (this.count === 0) this.first = at;
    this.count += 1;
    this.last = at;
    if (this.count >= this.maxTaps || at - this.first >= this.maxOpenMs) {
      this.flush();
      return;
    }
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => this.flush(), this.quietMs);
  }

  /** Send what is pending now (also on page hide). */
  flush(): void {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    if (this.count === 0) return;
    const batch: Batch = {
      key: this.options.newKey(),
      count: this.count,
      firstTapAt: new Date(this.first).toISOString(),
      lastTapAt: new Date(this.last).toISOString(),
    };
    this.count = 0;
    this.options.send(batch);
  }
}
