// Runs `start` in WORKERS processes: WORKERS<=1 -> in this process (no
// cluster primary); WORKERS>1 -> node:cluster primary + WORKERS workers
// sharing the listening port (round-robin, Node's default on Linux), the same
// model Hive Gateway's `--fork N` uses.
import cluster from 'node:cluster';

export function workerCount() {
  const n = Number(process.env.WORKERS ?? 1);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1;
}

export async function runWithWorkers(start, workers = workerCount()) {
  if (workers > 1 && cluster.isPrimary) {
    let stopping = false;
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on('exit', (w, code, signal) => {
      if (!stopping) {
        console.error(`worker ${w.process.pid} exited (code=${code} signal=${signal})`);
        if (Object.keys(cluster.workers).length === 0) process.exit(1);
      }
    });
    const stop = (sig) => {
      stopping = true;
      for (const w of Object.values(cluster.workers)) w.process.kill(sig);
      setTimeout(() => process.exit(0), 2000).unref();
      cluster.on('exit', () => {
        if (Object.keys(cluster.workers).length === 0) process.exit(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    return;
  }
  await start();
  if (!cluster.isWorker) {
    process.on('SIGTERM', () => process.exit(0));
    process.on('SIGINT', () => process.exit(0));
  }
}

export function listenOptions() {
  return { port: Number(process.env.PORT ?? 4000), host: process.env.HOST ?? '127.0.0.1' };
}
