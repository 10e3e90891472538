/**
 * Which access tokens are revoked before they expire, for HTTP requests and WebSocket connections.
 *
 * Access tokens carry `tv` (the user's token version, auth's users.token_version). Auth bumps the
 * version when a user's role or active status changes and on logout, and says so in user.updated /
 * user.logout (`tokenVersion`); user.deleted revokes every token of the user. Every gateway replica
 * consumes user.events (../features/token-denylist.ts) and records here:
 *  - in memory (checked first; listeners close the user's sockets at once);
 *  - in Redis when REDIS_URL is set, for ACCESS_TOKEN_TTL_SECONDS (by then every earlier token has
 *    expired), so a replica started after the change knows it too. Without Redis a replica reads
 *    user.events from the beginning instead.
 * A token is refused when its user is deleted or its `tv` is below the newest version seen.
 */
import type { Redis } from 'ioredis';
import { orFallback, type Logger, type PlatformConfig } from '@crm/kit';
import { redisPrefix } from './redis';

interface Entry {
  /** Tokens with a lower `tv` are revoked. */
  minVersion: number;
  deleted: boolean;
  until: number;
}

export type RevocationListener = (userId: string, entry: Readonly<Omit<Entry, 'until'>>) => void;

/** Sets KEYS[1] to ARGV[1] (with EX ARGV[2]) unless it holds a higher number: replays never lower it. */
const RAISE = `local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2])) end
return 1`;
const DELETED = 2 ** 31 - 1;

export class Revocations {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<RevocationListener>();
  private readonly prefix: string;
  private readonly ttl: number;

  constructor(config: PlatformConfig, private readonly logger: Logger, private readonly redis?: Redis) {
    this.prefix = `${redisPrefix(config)}tv:`;
    this.ttl = config.ACCESS_TOKEN_TTL_SECONDS;
  }

  /** Records that tokens of `userId` below `minVersion` (all of them when deleted) are revoked. */
  async revoke(userId: string, change: { minVersion?: number; deleted?: boolean }): Promise<void> {
    const now = Date.now();
    for (const [id, e] of this.entries) if (e.until <= now) this.entries.delete(id);
    const prev = this.entries.get(userId);
    const entry: Entry = {
      minVersion: Math.max(prev?.minVersion ?? 0, change.deleted ? DELETED : change.minVersion ?? 0),
      deleted: (prev?.deleted ?? false) || change.deleted === true,
      until: now + this.ttl * 1000,
    };
    this.entries.set(userId, entry);
    for (const l of this.listeners) l(userId, entry);
    if (this.redis) {
      await this.redis
        .eval(RAISE, 1, this.prefix + userId, String(entry.minVersion), String(this.ttl))
        .catch((err: Error) => this.logger.warn({ err: err.message }, 'revocations: redis write failed'));
    }
  }

  /** Why a token of this user and version is revoked (memory only: no I/O), or null. */
  revokedLocally(userId: string, tokenVersion: number): string | null {
    const e = this.entries.get(userId);
    return e && e.until > Date.now() ? reason(e.minVersion, tokenVersion) : null;
  }

  /** Why a token of this user and version is revoked (memory, then the shared store), or null. */
  async revoked(userId: string, tokenVersion: number): Promise<string | null> {
    const local = this.revokedLocally(userId, tokenVersion);
    if (local || !this.redis) return local;
    const stored = await orFallback(this.redis, (r) => r.get(this.prefix + userId), null);
    return stored === null ? null : reason(Number(stored), tokenVersion);
  }

  onRevoke(listener: RevocationListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function reason(minVersion: number, tokenVersion: number): string | null {
  if (minVersion >= DELETED) return 'Access token revoked: the user was deleted';
  if (tokenVersion < minVersion) return 'Access token revoked: the user\'s role or status changed, or they signed out; sign in again';
  return null;
}
