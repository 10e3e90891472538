import { hash, verify } from '@node-rs/argon2';

/** argon2id with the library's defaults (OWASP-level memory cost). */
export const hashPassword = (password: string) => hash(password); // the library's default algorithm is argon2id;
export const verifyPassword = (passwordHash: string, password: string) => verify(passwordHash, password).catch(() => false);

/** Verified against when the email is unknown, so both failures take the same time. */
let dummyHash: Promise<string> | undefined;
export const timingDummyHash = () => (dummyHash ??= hashPassword('not-a-real-password-for-timing'));
