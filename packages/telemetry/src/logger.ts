import pino from 'pino';
import { logContext } from './tracing';

export type Logger = pino.Logger;

/**
 * One JSON logger per service; secrets are redacted wherever they appear by name. Lines written
 * inside a traced request or event carry trace_id, span_id and the event's correlation_id.
 */
export function createLogger(service: string, level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    name: service,
    level,
    mixin: logContext,
    redact: {
      paths: [
        'password',
        '*.password',
        'authorization',
        '*.authorization',
        'refreshToken',
        '*.refreshToken',
        'accessToken',
        '*.accessToken',
        // password changes and resets (a reset token is a credential), and the mail server's URL (it may carry a password)
        'token',
        '*.token',
        'currentPassword',
        '*.currentPassword',
        'newPassword',
        '*.newPassword',
        'MAIL_URL',
        '*.MAIL_URL',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
