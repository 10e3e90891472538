/**
 * A real SMTP server (the `smtp-server` package) for tests: it accepts every mail and keeps it, raw
 * and with its text decoded (quoted-printable soft breaks and escapes), to read links from.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { eventually } from '@crm/testing';

export interface ReceivedMail {
  to: string[];
  raw: string;
  /** The raw message with quoted-printable undone (good enough to find a link in a text mail). */
  text: string;
}

export interface TestSmtp {
  port: number;
  url: string;
  received: ReceivedMail[];
  /** The first mail to `to` received so far (waits for it; event-driven polling of what arrived). */
  mailTo(to: string, timeoutMs?: number): Promise<ReceivedMail>;
  /** Stops listening (the port is free: senders get "connection refused"). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
}

const decodeQuotedPrintable = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));

export async function startTestSmtp(): Promise<TestSmtp> {
  const received: ReceivedMail[] = [];
  const make = () =>
    new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          received.push({ to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()), raw, text: decodeQuotedPrintable(raw) });
          callback();
        });
      },
    });
  let server = make();
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.server.address() as AddressInfo).port));
    });
  const port = await listen(0);
  let listening = true;
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    received,
    mailTo: (to, timeoutMs = 60_000) => eventually(async () => received.find((m) => m.to.includes(to.toLowerCase())), { timeoutMs, intervalMs: 100 }),
    async down() {
      if (!listening) return;
      listening = false;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    async up() {
      if (listening) return;
      server = make();
      await listen(port);
      listening = true;
    },
  };
}
