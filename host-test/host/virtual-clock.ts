// Time as the test decides it. Nothing moves unless advance() is called; advancing fires, in
// deadline order, every timer that falls due (ticks, http-call timeouts), each at its own instant.

const NANOS_PER_MILLI = 1_000_000n;

export interface Timer {
  cancel(): void;
}

interface Scheduled {
  at: bigint;
  order: number;
  fire: () => void;
  cancelled: boolean;
}

export class VirtualClock {
  private realtime: bigint;
  private monotonic = 0n;
  private readonly timers: Scheduled[] = [];
  private scheduledCount = 0;

  /** @param startMs wall-clock start, in milliseconds since the Unix epoch */
  constructor(startMs: number) {
    this.realtime = BigInt(startMs) * NANOS_PER_MILLI;
  }

  /** Wall-clock nanoseconds since the epoch (WASI REALTIME, proxy_get_current_time_nanoseconds). */
  get realtimeNanos(): bigint {
    return this.realtime;
  }

  /** Nanoseconds since the host started (WASI MONOTONIC). */
  get monotonicNanos(): bigint {
    return this.monotonic;
  }

  get nowMs(): number {
    return Number(this.realtime / NANOS_PER_MILLI);
  }

  get nowSeconds(): number {
    return Math.floor(this.nowMs / 1000);
  }

  /** Runs `fire` once, `delayMs` from now. */
  schedule(delayMs: number, fire: () => void): Timer {
    const timer: Scheduled = { at: this.monotonic + BigInt(delayMs) * NANOS_PER_MILLI, order: this.scheduledCount++, fire, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Moves time forward by `ms`, firing due timers in order (a timer may schedule further ones). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance the clock by ${ms} ms`);
    const target = this.monotonic + BigInt(Math.round(ms * 1e6));
    for (let next = this.nextDue(target); next !== undefined; next = this.nextDue(target)) {
      this.moveTo(next.at);
      next.fire();
    }
    this.moveTo(target);
  }

  private nextDue(limit: bigint): Scheduled | undefined {
    let next: Scheduled | undefined;
    for (let i = this.timers.length - 1; i >= 0; i--) {
      const timer = this.timers[i];
      if (timer.cancelled) this.timers.splice(i, 1);
      else if (timer.at <= limit && (next === undefined || timer.at < next.at || (timer.at === next.at && timer.order < next.order))) next = timer;
    }
    if (next !== undefined) this.timers.splice(this.timers.indexOf(next), 1);
    return next;
  }

  private moveTo(monotonic: bigint): void {
    this.realtime += monotonic - this.monotonic;
    this.monotonic = monotonic;
  }
}
