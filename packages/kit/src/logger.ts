import pino from 'pino';

export type Logger = pino.Logger;

/** One JSON logger per service; secrets are redacted wherever they appear by name. */
export function createLogger(service: string, level: string): Logger {
  return pino({
    name: service,
    level,
    redact: {
      paths: ['password', '*.password', 'authorization', '*.authorization', 'refreshToken', '*.refreshToken', 'accessToken', '*.accessToken'],
      censor: '[redacted]',
    },
  });
}
