/**
 * Named one-shot timers for the BGP FSM. The FSM never calls setTimeout itself: it arms and
 * clears timers by name through a `Clock`, so unit tests drive time with `FakeClock.advance`
 * (no sleeps, no wall-clock assertions) and the daemon uses `TimerClock`.
 *
 * Arming a name that is already armed replaces it: RFC 4271's "restart the HoldTimer" is one
 * call, and a timer can never fire twice for one arming.
 */

export interface Clock {
  /** Arms (or re-arms) `name` to call `fire` once after `delayMs`. */
  setTimer(name: string, delayMs: number, fire: () => void): void;
  clearTimer(name: string): void;
}

/** The real clock: one Node timer per name. */
export class TimerClock implements Clock {
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; delayMs: number; fire: () => void }>();

  setTimer(name: string, delayMs: number, fire: () => void): void {
    const existing = this.timers.get(name);
    if (existing && existing.delayMs === delayMs) {
      // The hold timer is re-armed for every UPDATE received: refresh() moves the existing
      // timer instead of a clearTimeout/setTimeout pair per message.
      existing.fire = fire;
      existing.timer.refresh();
      return;
    }
    this.clearTimer(name);
    const entry = {
      timer: setTimeout(() => {
        this.timers.delete(name);
        entry.fire();
      }, delayMs),
      delayMs,
      fire,
    };
    this.timers.set(name, entry);
  }

  clearTimer(name: string): void {
    const entry = this.timers.get(name);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.timers.delete(name);
  }

  /** Clears every timer (a session being torn down). */
  clearAll(): void {
    for (const entry of this.timers.values()) clearTimeout(entry.timer);
    this.timers.clear();
  }
}

interface FakeTimer {
  readonly dueMs: number;
  readonly seq: number;
  readonly fire: () => void;
}

/** A clock for tests: time moves only when `advance` is called; every arming is recorded. */
export class FakeClock implements Clock {
  nowMs = 0;
  /** every setTimer call in order, for asserting on delays (backoff, keepalive interval) */
  readonly armed: { readonly name: string; readonly delayMs: number; readonly atMs: number }[] = [];
  private readonly timers = new Map<string, FakeTimer>();
  private seq = 0;

  setTimer(name: string, delayMs: number, fire: () => void): void {
    this.timers.set(name, { dueMs: this.nowMs + delayMs, seq: this.seq++, fire });
    this.armed.push({ name, delayMs, atMs: this.nowMs });
  }

  clearTimer(name: string): void {
    this.timers.delete(name);
  }

  isArmed(name: string): boolean {
    return this.timers.has(name);
  }

  /** Milliseconds until `name` fires, or undefined when it is not armed. */
  remainingMs(name: string): number | undefined {
    const timer = this.timers.get(name);
    return timer === undefined ? undefined : timer.dueMs - this.nowMs;
  }

  /** The delay of the most recent arming of `name`. */
  lastDelayMs(name: string): number | undefined {
    for (let i = this.armed.length - 1; i >= 0; i--) {
      const entry = this.armed[i];
      if (entry?.name === name) return entry.delayMs;
    }
    return undefined;
  }

  /** Moves time forward, firing every timer that falls due (including ones armed meanwhile) in due order. */
  advance(ms: number): void {
    const target = this.nowMs + ms;
    for (;;) {
      let next: [string, FakeTimer] | undefined;
      for (const entry of this.timers) {
        if (entry[1].dueMs > target) continue;
        if (!next || entry[1].dueMs < next[1].dueMs || (entry[1].dueMs === next[1].dueMs && entry[1].seq < next[1].seq)) next = entry;
      }
      if (!next) break;
      const [name, timer] = next;
      this.timers.delete(name);
      this.nowMs = timer.dueMs;
      timer.fire();
    }
    this.nowMs = target;
  }

  /** Advances exactly to when `name` fires; throws if it is not armed (a test bug). */
  fire(name: string): void {
    const remaining = this.remainingMs(name);
    if (remaining === undefined) throw new Error(`timer ${name} is not armed (armed: ${[...this.timers.keys()].join(', ') || 'none'})`);
    this.advance(remaining);
  }
}
