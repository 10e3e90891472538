/**
 * A second, real Kafka broker for fault stories (scripts/kafka.sh on its own ports and data dir),
 * so a test can stop, start or freeze it without touching the broker every other suite uses.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './start-stack';

export interface TestBroker {
  port: number;
  /** The KAFKA_BROKERS value that reaches it. */
  brokers: string;
  start(): void;
  stop(): void;
  /** Stops it and deletes its data dir. */
  remove(): void;
}

export function testBroker(label: string): TestBroker {
  const port = 19000 + Math.floor(Math.random() * 800);
  const env = {
    ...process.env,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(port + 900),
    KAFKA_DATA_DIR: `/tmp/crm-kafka-${label}-${randomBytes(4).toString('hex')}`,
  };
  const run = (cmd: 'start' | 'stop') => execFileSync('bash', [join(ROOT, 'scripts/kafka.sh'), cmd], { env, stdio: 'pipe', timeout: 150_000 });
  return {
    port,
    brokers: `127.0.0.1:${port}`,
    start: () => run('start'),
    stop: () => run('stop'),
    remove() {
      try {
        run('stop');
      } finally {
        rmSync(env.KAFKA_DATA_DIR, { recursive: true, force: true });
      }
    },
  };
}
