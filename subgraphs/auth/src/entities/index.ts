export * from './user';
export * from './refresh-token';
export * from './audit-entry';
export * from './password-reset';
import { UserSchema } from './user';
import { RefreshTokenSchema } from './refresh-token';
import { AuditEntrySchema } from './audit-entry';
import { OutgoingMailSchema, PasswordResetTokenSchema } from './password-reset';
export const entities = [UserSchema, RefreshTokenSchema, AuditEntrySchema, PasswordResetTokenSchema, OutgoingMailSchema];
