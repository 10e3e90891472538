/** What the benchmark scripts (bench/crm.ts, bench/subscriptions.ts) measure with, in one place. */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** A numeric environment variable, or its default. */
export const num = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);

export interface Dist {
  n: number;
  p50: number;
  p99: number;
  max: number;
}
/** The p-th percentile of sorted values (nearest rank). */
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
export const dist = (values: number[]): Dist => {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] ?? NaN };
};
export const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : '–');
export const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
/** The machine's load averages (1, 5, 15 min), two decimals. */
export const uptime = () => loadavg().map((l) => Number(l.toFixed(2)));
/**
 * CPU time (user + system, ms) the given processes have used so far, from /proc/<pid>/stat (clock
 * ticks of 10 ms): a per-request cost that a busy shared machine distorts far less than latency.
 */
export const cpuMs = (...pids: number[]) =>
  pids.reduce((sum, pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return sum + (Number(fields[11]) + Number(fields[12])) * 10;
  }, 0);

/** cpuMs of one process, 0 when it is gone (a Postgres backend that ended, a broker not running here). */
export const cpuMsOrZero = (pid: number) => {
  try {
    return cpuMs(pid);
  } catch {
    return 0;
  }
};
