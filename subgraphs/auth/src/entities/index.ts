export * from './user';
export * from './refresh-token';
export * from './audit-entry';
import { UserSchema } from './user';
import { RefreshTokenSchema } from './refresh-token';
import { AuditEntrySchema } from './audit-entry';
export const entities = [UserSchema, RefreshTokenSchema, AuditEntrySchema];
