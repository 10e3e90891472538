/**
 * The one retry helper: run an async step again after a capped exponential pause with jitter,
 * until it succeeds, `shouldRetry` says no, `retries` are spent, or the signal aborts.
 *
 * Why our own and not p-retry: p-retry 7+ is ESM-only (and its newest needs Node 22); this repo
 * runs CommonJS (tsx / swc) on Node 20. The helper is small, and it has the one hook the consumer
 * needs that the libraries lack: its own `wait` (a consumer keeps heartbeating the broker while
 * it pauses, and the relay's pause can be cut short by a new commit).
 */

export interface BackoffOptions {
  /** Pause before the first retry (default 100 ms); each later pause is `factor` times longer. */
  baseDelayMs?: number;
  /** Longest pause (default 10 s). */
  maxDelayMs?: number;
  /** Growth per retry (default 2). */
  factor?: number;
  /**
   * Share of each pause that is random (0 … 1, default 0.2): the pause is drawn from
   * [delay × (1 − jitter), delay], so replicas failing together do not retry in lockstep.
   */
  jitter?: number;
}

export interface RetryInfo {
  /** The error of the attempt that just failed. */
  error: unknown;
  /** That attempt's number (1 = the first call). */
  attempt: number;
  /** The pause before the next attempt. */
  delayMs: number;
}

export interface RetryOptions extends BackoffOptions {
  /** Retries after the first attempt (default: unlimited). */
  retries?: number;
  /** Stops retrying (and any pause) when aborted: the abort reason is thrown. */
  signal?: AbortSignal;
  /** False: the error is thrown as it is, without further attempts (default: every error is retried). */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** Called before each pause: logging, health, metrics. May throw to stop retrying. */
  onRetry?: (info: RetryInfo) => void | Promise<void>;
  /** How to pause (default: a timer the signal cuts short). */
  wait?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
}

/** The pause before retry `retry` (1-based), jitter applied. */
export function backoffDelay(retry: number, options: BackoffOptions = {}): number {
  const base = options.baseDelayMs ?? 100;
  const max = options.maxDelayMs ?? 10_000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
  // Exponent bounded: 2^1024 is Infinity, and the cap applies long before.
  const delay = Math.min(max, base * factor ** Math.min(Math.max(retry - 1, 0), 64));
  return Math.round(delay * (1 - jitter * Math.random()));
}

/** A pause of `ms`, ended early (rejecting with the abort reason) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `fn` (given the attempt number, 1-based) until it succeeds; see RetryOptions for when it stops. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? Infinity;
  const wait = options.wait ?? sleep;
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) throw abortReason(options.signal);
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw abortReason(options.signal);
      if (attempt > retries || (options.shouldRetry && !options.shouldRetry(error, attempt))) throw error;
      const delayMs = backoffDelay(attempt, options);
      await options.onRetry?.({ error, attempt, delayMs });
      await wait(delayMs, options.signal);
    }
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}
