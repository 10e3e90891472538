/**
 * Services as separate processes, as a cluster runs them: one subgraph per process
 * (subgraphs/<name>/src/main.ts) or the gateway (gateway/src/main.ts), each a single node
 * process (tsx as an --import hook, so `kill -9` kills the service itself), and a round-robin TCP
 * balancer in front of the replicas of one subgraph, as a Kubernetes Service is: a connection
 * goes to the next live replica; a refused one is retried on the next.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { freePort } from '@crm/database';
import { startGateway } from '@crm/gateway';
import { ROOT, type TestStack } from '@crm/platform';

export interface ServiceProcess {
  name: string;
  port: number;
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  alive(): boolean;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `gateway` or a subgraph by name (on `port`, or a free one); its output goes to `<logDir>/<label>.log`. */
export async function startService(service: string, label: string, env: Record<string, string>, logDir: string, port?: number): Promise<ServiceProcess> {
  port ??= await freePort();
  const entry = service === 'gateway' ? ['gateway/src/main.ts'] : [`subgraphs/${service}/src/main.ts`];
  mkdirSync(logDir, { recursive: true });
  const log = createWriteStream(join(logDir, `${label}.log`));
  const child = spawn(process.execPath, ['--import', 'tsx', ...entry], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let running = true;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running = false;
      resolve(code);
    }),
  );
  return {
    name: label,
    port,
    url: `http://127.0.0.1:${port}/graphql`,
    child,
    exited,
    alive: () => running,
    kill: (signal) => {
      if (running) child.kill(signal);
    },
  };
}

/** Resolves once GET <path> answers 200; fails when the process exits or `timeoutMs` passes. */
export async function waitFor(service: ServiceProcess, path: '/ready' | '/health', timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!service.alive()) throw new Error(`${service.name} exited before it was ready (see its log)`);
    try {
      const res = await fetch(`http://127.0.0.1:${service.port}${path}`, { signal: AbortSignal.timeout(3000) });
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`${service.name} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface Balancer {
  port: number;
  url: string;
  /** Connections handed to each replica so far, by label. */
  connections: Record<string, number>;
  close(): Promise<void>;
}

/** A round-robin TCP balancer over the live replicas (the part of a Kubernetes Service the test needs). */
export async function balancer(replicas: ServiceProcess[]): Promise<Balancer> {
  const port = await freePort();
  const connections: Record<string, number> = Object.fromEntries(replicas.map((r) => [r.name, 0]));
  const sockets = new Set<Socket>();
  let next = 0;
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    const tryReplica = (attempt: number) => {
      const live = replicas.filter((r) => r.alive());
      if (live.length === 0 || attempt >= replicas.length) return client.destroy();
      const target = live[next++ % live.length]!;
      const upstream = connect(target.port, '127.0.0.1');
      sockets.add(upstream);
      upstream.once('close', () => sockets.delete(upstream));
      upstream.once('connect', () => {
        connections[target.name] = (connections[target.name] ?? 0) + 1;
        client.pipe(upstream).pipe(client);
        client.once('error', () => upstream.destroy());
        upstream.once('error', () => client.destroy());
        client.once('close', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
      });
      upstream.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') tryReplica(attempt + 1);
        else client.destroy();
      });
    };
    tryReplica(0);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    url: `http://127.0.0.1:${port}/graphql`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A gateway replica of `stack` with other settings (its own caps, budgets or mode), for the length of `run`. */
export async function withGatewayReplica(stack: TestStack, overrides: Record<string, unknown>, run: (url: string) => Promise<void>): Promise<void> {
  const g = await startGateway({ config: { ...stack.config, ...overrides }, supergraphSdl: stack.supergraphSdl, bus: stack.bus, port: 0, host: '127.0.0.1' });
  try {
    await run(g.url);
  } finally {
    await g.stop();
  }
}
