/**
 * Which access tokens are revoked before they expire, for HTTP requests and WebSocket connections:
 * revocation at the source (docs/revocation.md).
 *
 * Access tokens carry `tv` (the user's token version, auth's users.token_version). Auth bumps the
 * version when a user's role or active status changes, on logout and on a password change, and
 * deactivates a deleted user — all committed before the mutation answers. The gateway asks auth
 * for the current state (a signed internal call, POST /internal/token-states, batched) and keeps
 * each answer for at most TOKEN_STATE_CACHE_MS (< 1 s), so a revocation holds on every replica
 * within that time of the mutation's answer — with Kafka down, and across a restart (there is no
 * state to rebuild: nothing is learnt from events). The replica that served a revoking mutation
 * forgets its cache at once (`forget`).
 *
 * When auth cannot be asked: a state learnt within the token's life is used for reads; a write
 * (mutation) is refused with SERVICE_UNAVAILABLE — the gateway fails closed when it cannot tell.
 * Users with open sockets are re-checked in the background (`watch`), and listeners close their
 * sockets when a revocation is found.
 */
import DataLoader from 'dataloader';
import { gatewaySigningKey, subgraphCallHeaders, SYSTEM_IDENTITY, type SigningKey } from '@crm/runtime';
import { type Logger } from '@crm/telemetry';
import { type PlatformConfig } from '@crm/config';

/** How long one answer from auth is trusted: the bound on how late a revocation takes effect. */
export const TOKEN_STATE_CACHE_MS = 500;
/**
 * How long the gateway waits for auth's answer before it refuses a write (fail closed). Generous: on a
 * loaded machine auth's answer can take seconds, and refusing writes then is an outage of its own.
 */
const LOOKUP_TIMEOUT_MS = 5_000;

interface State {
  /** Tokens with a lower `tv` are revoked. */
  minVersion: number;
  /** false: every token of the user is refused (deleted, deactivated, unknown). */
  active: boolean;
  at: number;
}

export type RevocationListener = (userId: string) => void;

export interface RevocationOptions {
  /** Auth's GraphQL URL (from the supergraph), looked up per call. */
  authUrl(): string | undefined;
}

export class Revocations {
  private readonly states = new Map<string, State>();
  private readonly listeners = new Set<RevocationListener>();
  private readonly watched = new Map<string, number>();
  /** One lookup in flight per user: requests that need the same user's state share it (dropped on `forget`). */
  private readonly inflight = new Map<string, Promise<State | Error>>();
  private readonly loader: DataLoader<string, State | Error>;
  private readonly maxAgeMs: number;
  private timer: NodeJS.Timeout | undefined;
  private generation = 0;

  /** The gateway's own key: auth answers token states only to the gateway (its signature). */
  private readonly signer: SigningKey;

  constructor(
    config: PlatformConfig,
    private readonly logger: Logger,
    private readonly options: RevocationOptions,
  ) {
    this.signer = gatewaySigningKey(config);
    this.maxAgeMs = config.ACCESS_TOKEN_TTL_SECONDS * 1000;
    this.loader = new DataLoader((ids) => this.fetch(ids), { cache: false, maxBatchSize: 500 });
  }

  /**
   * Whether a token of this user and version is revoked (`reason`, or null), and whether that was
   * `confirmed` by auth within TOKEN_STATE_CACHE_MS. When auth cannot answer, the last state learnt
   * within a token's life decides, unconfirmed (the caller refuses writes then); with none, null.
   */
  async check(userId: string, tokenVersion: number): Promise<{ reason: string | null; confirmed: boolean }> {
    const now = Date.now();
    const known = this.states.get(userId);
    if (known && now - known.at < TOKEN_STATE_CACHE_MS) return { reason: reason(known, tokenVersion), confirmed: true };
    const fresh = await this.load(userId);
    if (!(fresh instanceof Error)) return { reason: reason(fresh, tokenVersion), confirmed: true };
    const last = known && now - known.at < this.maxAgeMs ? known : undefined;
    return { reason: last ? reason(last, tokenVersion) : null, confirmed: false };
  }

  /** Why a token of this user and version is revoked, or null (unconfirmed answers included). */
  async revoked(userId: string, tokenVersion: number): Promise<string | null> {
    return (await this.check(userId, tokenVersion)).reason;
  }

  /** Why a token is revoked by what this replica last learnt (no I/O), or null. */
  revokedLocally(userId: string, tokenVersion: number): string | null {
    const known = this.states.get(userId);
    return known ? reason(known, tokenVersion) : null;
  }

  /** Drops every cached state (this replica served a mutation that may have revoked tokens). */
  forget(): void {
    this.generation += 1;
    this.states.clear();
    // a lookup already in flight may have been answered before the revoking mutation: not shared further
    this.inflight.clear();
  }

  /** Keeps `userId`'s state fresh in the background while watched (open sockets); returns the release. */
  watch(userId: string): () => void {
    this.watched.set(userId, (this.watched.get(userId) ?? 0) + 1);
    if (!this.timer) {
      this.timer = setInterval(() => void this.refreshWatched(), TOKEN_STATE_CACHE_MS);
      this.timer.unref();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.watched.get(userId) ?? 1) - 1;
      if (n > 0) this.watched.set(userId, n);
      else this.watched.delete(userId);
      if (this.watched.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  onRevoke(listener: RevocationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  private async refreshWatched(): Promise<void> {
    const ids = [...this.watched.keys()];
    if (ids.length === 0) return;
    const results = await Promise.all(ids.map((id) => this.load(id)));
    for (const [i, result] of results.entries()) {
      if (result instanceof Error) continue;
      for (const l of this.listeners) l(ids[i]!);
    }
  }

  /** DataLoader rejects for an Error in the batch's answer: turned back into a value here. */
  private load(userId: string): Promise<State | Error> {
    const shared = this.inflight.get(userId);
    if (shared) return shared;
    const lookup = this.loader.load(userId).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    this.inflight.set(userId, lookup);
    void lookup.finally(() => {
      if (this.inflight.get(userId) === lookup) this.inflight.delete(userId);
    });
    return lookup;
  }

  private async fetch(ids: readonly string[]): Promise<(State | Error)[]> {
    const generation = this.generation;
    const url = this.options.authUrl();
    try {
      if (!url) throw new Error('the auth service is not in the supergraph');
      const body = JSON.stringify({ users: ids });
      const res = await fetch(new URL('/internal/token-states', url), {
        method: 'POST',
        headers: subgraphCallHeaders(SYSTEM_IDENTITY, this.signer, 'auth', body),
        body,
        signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
      });
      if (!res.ok) throw new Error(`auth answered ${res.status}`);
      const { states } = (await res.json()) as { states: Record<string, { minVersion: number; active: boolean }> };
      const at = Date.now();
      if (this.states.size > 100_000) for (const [id, s] of this.states) if (at - s.at > this.maxAgeMs) this.states.delete(id);
      return ids.map((id) => {
        const s = states[id];
        if (!s || !Number.isInteger(s.minVersion) || typeof s.active !== 'boolean') return new Error('auth did not answer for this user');
        const state: State = { minVersion: s.minVersion, active: s.active, at };
        // An answer that started before a `forget` may predate the revoking mutation: not cached.
        if (generation === this.generation) this.states.set(id, state);
        return state;
      });
    } catch (err) {
      const message = (err as Error).message;
      this.logger.warn({ err: message, users: ids.length }, 'revocations: could not ask auth for token states');
      return ids.map(() => new Error(message));
    }
  }
}

function reason(state: Pick<State, 'minVersion' | 'active'>, tokenVersion: number): string | null {
  if (!state.active) return 'Access token revoked: the user is deleted or deactivated';
  if (tokenVersion < state.minVersion) return "Access token revoked: the user's role or status changed, or they signed out; sign in again";
  return null;
}
