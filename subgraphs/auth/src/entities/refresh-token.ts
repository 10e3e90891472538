import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';

/** One issued refresh token; only its SHA-256 is stored. `usedAt` marks rotation. */
export const RefreshToken = defineRow({
  name: 'RefreshToken',
  tableName: 'refresh_tokens',
  properties: {
    id: p.uuid().primary(),
    userId: p.uuid().fieldName('user_id'),
    /** Tokens rotated from one login share a family; reuse of a used token revokes the family. */
    familyId: p.uuid().fieldName('family_id'),
    tokenHash: p.text().fieldName('token_hash'),
    expiresAt: p.datetime().fieldName('expires_at'),
    usedAt: p.datetime().nullable().fieldName('used_at'),
    revokedAt: p.datetime().nullable().fieldName('revoked_at'),
    createdAt: createdAtColumn(),
  },
});
export type RefreshToken = InferEntity<typeof RefreshToken>;
