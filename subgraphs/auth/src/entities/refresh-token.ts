import { EntitySchema } from '@mikro-orm/postgresql';

/** One issued refresh token; only its SHA-256 is stored. `usedAt` marks rotation. */
export class RefreshToken {
  id!: string;
  userId!: string;
  /** Tokens rotated from one login share a family; reuse of a used token revokes the family. */
  familyId!: string;
  tokenHash!: string;
  expiresAt!: Date;
  usedAt: Date | null = null;
  revokedAt: Date | null = null;
  createdAt: Date = new Date();
}

export const RefreshTokenSchema = new EntitySchema<RefreshToken>({
  class: RefreshToken,
  tableName: 'refresh_tokens',
  properties: {
    id: { type: 'uuid', primary: true },
    userId: { type: 'uuid', fieldName: 'user_id' },
    familyId: { type: 'uuid', fieldName: 'family_id' },
    tokenHash: { type: 'text', fieldName: 'token_hash' },
    expiresAt: { type: 'datetime', fieldName: 'expires_at' },
    usedAt: { type: 'datetime', nullable: true, fieldName: 'used_at' },
    revokedAt: { type: 'datetime', nullable: true, fieldName: 'revoked_at' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});
