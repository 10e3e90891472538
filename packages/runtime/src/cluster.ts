/**
 * N worker processes behind one port (node:cluster): the primary forks them (same script and
 * arguments), the OS spreads connections over their shared listening socket, and a worker that
 * dies is replaced. Used by the gateway (GATEWAY_WORKERS) in `npm start` and in its container.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '@crm/telemetry';

export interface WorkerPool {
  /** The port the workers listen on (the same for all; a random one is shared too). */
  port: number;
  stop(): Promise<void>;
}

/** In the cluster primary: forks `count` workers and resolves once every one is listening. */
export async function startWorkers(count: number, logger: Logger, onFork?: (worker: Worker) => void): Promise<WorkerPool> {
  let stopping = false;
  const live = new Set<Worker>();
  const fork = () =>
    new Promise<number>((resolve, reject) => {
      const worker = cluster.fork();
      live.add(worker);
      onFork?.(worker);
      worker.once('listening', (address) => resolve(address.port));
      worker.once('exit', (code, signal) => {
        live.delete(worker);
        reject(new Error(`worker exited (${signal ?? code}) before it listened`));
        if (stopping) return;
        logger.error({ code, signal }, 'worker exited; starting another');
        fork().catch((err: unknown) => logger.error({ err }, 'replacement worker failed'));
      });
    });
  const ports = await Promise.all(Array.from({ length: count }, fork));
  return {
    port: ports[0]!,
    async stop() {
      stopping = true;
      await Promise.all(
        [...live].map(
          (w) =>
            new Promise((resolve) => {
              w.once('exit', resolve);
              w.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

export const isClusterPrimary = () => cluster.isPrimary;
