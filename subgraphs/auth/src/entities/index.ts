export * from './user';
export * from './refresh-token';
export * from './audit-entry';
export * from './password-reset';
import { User } from './user';
import { RefreshToken } from './refresh-token';
import { AuditEntry } from './audit-entry';
import { OutgoingMail, PasswordResetToken } from './password-reset';
export const entities = [User, RefreshToken, AuditEntry, PasswordResetToken, OutgoingMail];
