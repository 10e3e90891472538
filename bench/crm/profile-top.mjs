/**
 * Summarises a .cpuprofile (V8 / node --cpu-prof / bench/crm.ts CPU_PROF): top functions by self
 * time, and self time per package (node_modules/<pkg>, node: internals, this repo's folders).
 *   node bench/crm/profile-top.mjs <file.cpuprofile> [top=25] [fromUs toUs]
 * fromUs / toUs: only samples in that window of V8's clock (µs, CLOCK_MONOTONIC on Linux: the value of
 * process.hrtime.bigint() / 1000n in any process of the machine; bench/subscriptions.ts prints its event window).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// This checkout's root (file URLs in the profile start with it), whichever worktree it is.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const [file, topArg, fromArg, toArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const from = fromArg ? Number(fromArg) : -Infinity;
const to = toArg ? Number(toArg) : Infinity;
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
let at = p.startTime;
for (let i = 0; i < p.samples.length; i++) {
  at += p.timeDeltas[i] ?? 0;
  if (at < from || at > to) continue;
  self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fns = new Map();
const pkgs = new Map();
const where = (url) => {
  if (!url) return '(native/V8)';
  if (url.startsWith('node:')) return 'node: internals';
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (m) return m[1];
  const r = url.replace(/^file:\/\//, '').match(new RegExp(`^${esc(ROOT)}([^/]+/[^/]+)`));
  return r ? r[1] : url;
};
for (const [id, t] of self) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const name = cf.functionName || '(anonymous)';
  const key = ['(idle)', '(program)', '(garbage collector)'].includes(name)
    ? name
    : `${name} ${cf.url.replace(/^.*node_modules\//, '').replace(new RegExp(`^file://${esc(ROOT)}`), '')}:${cf.lineNumber + 1}`;
  fns.set(key, (fns.get(key) ?? 0) + t);
  const pk = ['(idle)', '(program)', '(garbage collector)'].includes(name) ? name : where(cf.url);
  pkgs.set(pk, (pkgs.get(pk) ?? 0) + t);
}
const busy = total - (fns.get('(idle)') ?? 0);
const pct = (t) => `${((100 * t) / busy).toFixed(1)} %`;
console.log(`total ${(total / 1e6).toFixed(1)} s sampled, busy ${(busy / 1e6).toFixed(1)} s (percentages of busy time)\n`);
console.log('self time by package:');
for (const [k, t] of [...pkgs]
  .filter(([k]) => k !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, 15))
  console.log(`  ${pct(t).padStart(7)}  ${k}`);
console.log('\ntop functions by self time:');
for (const [k, t] of [...fns]
  .filter(([k]) => k !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, top))
  console.log(`  ${pct(t).padStart(7)}  ${k}`);
