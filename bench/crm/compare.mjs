/**
 * Side-by-side table of bench:crm runs (issue 13's before / after), from their crm.json files:
 *   node bench/crm/compare.mjs before=bench/results/crm-runs/before-single.json after-single=… after-multi=…
 * Prints a Markdown table (medians over each run's rounds, as crm.md reports them).
 */
import { readFileSync } from 'node:fs';

const runs = process.argv.slice(2).map((arg) => {
  const [label, file] = arg.split('=');
  return { label, data: JSON.parse(readFileSync(file, 'utf8')) };
});
const row = (name, cell, aim = '') => `| ${name} | ${runs.map((r) => cell(r.data)).join(' | ')} | ${aim} |`;
const load = (d, key) => d.loads?.[key];
const fmt = (v, unit = '') => (v === undefined || v === null ? '–' : `${Math.round(v * 10) / 10}${unit}`);
const rps = (key) => (d) => fmt(load(d, key)?.rps);
const p = (key, q) => (d) => fmt(load(d, key)?.latency?.[q], ' ms');
const cpu = (key) => (d) => fmt(load(d, key)?.cpuMsPerRequest);
const both = (key) => (d) => `${rps(key)(d)}, ${p(key, 'p99')(d)}`;
const lines = [
  `| scenario | ${runs.map((r) => r.label).join(' | ')} | aim |`,
  `|---|${runs.map(() => '---').join('|')}|---|`,
  row('list, 1 connection: p50 / **p99**', (d) => `${p('customers@1', 'p50')(d)} / **${p('customers@1', 'p99')(d)}**`, 'p99 < 25 ms'),
  row('varied list, 1 connection: p50 / p99', (d) => `${p('customers-varied@1', 'p50')(d)} / ${p('customers-varied@1', 'p99')(d)}`),
  row('list, 20 connections: **req/s**, p99', (d) => `**${rps('customers')(d)}**, ${p('customers', 'p99')(d)}`, '≥ 300 req/s, p99 < 150 ms'),
  row('list, 20 connections: CPU ms per request', cpu('customers')),
  row('varied list, 20 connections: req/s, p99', both('customers-varied')),
  row('varied list, 20 connections: CPU ms per request', cpu('customers-varied')),
  row('dashboard, 20 connections: req/s, **p99**', (d) => `${rps('dashboard')(d)}, **${p('dashboard', 'p99')(d)}**`, 'p99 < 25 ms'),
  row('dashboard, 1 connection: p99', p('dashboard@1', 'p99')),
  row('`createCustomer`, 20 connections: **req/s**, p99', (d) => `**${rps('createCustomer')(d)}**, ${p('createCustomer', 'p99')(d)}`, '≥ 300 req/s'),
  row('saga completion: p50 / **p99**', (d) => `${fmt(d.saga?.p50, ' ms')} / **${fmt(d.saga?.p99, ' ms')}**`, 'p99 < 300 ms kept'),
  row('login alone, 20 connections: req/s, p99', both('login')),
  row(
    'login (5 conns) and varied list (20) at once: p99 login / list',
    (d) => `${p('login+list:login', 'p99')(d)} / ${p('login+list:list', 'p99')(d)}`,
    'list not stalled by login',
  ),
  row('projections consistent after the createCustomer load', (d) => fmt(d.projectionCatchUp?.afterLastWrite ?? d.projectionCatchUp?.seconds, ' s')),
];
console.log(lines.join('\n'));
