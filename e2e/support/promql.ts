/** Reading PromQL the way the dashboard and alert checks need: which metric names an expression uses. */

/** PromQL functions, aggregations and keywords (anything else that is an identifier is a metric name). */
const PROMQL = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'topk',
  'bottomk',
  'quantile',
  'stddev',
  'rate',
  'irate',
  'increase',
  'delta',
  'deriv',
  'histogram_quantile',
  'abs',
  'clamp_min',
  'clamp_max',
  'time',
  'vector',
  'scalar',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
]);

/** Metric names in a PromQL expression: strings, label matchers, ranges and by/without clauses removed, functions left out. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((name) => !PROMQL.has(name));
}

/** Series names of a metric family as Prometheus stores them (histograms as _bucket, _sum and _count). */
export function seriesNames(name: string, type: string): string[] {
  if (type === 'histogram') return ['_bucket', '_sum', '_count'].map((s) => `${name}${s}`);
  if (type === 'summary') return ['', '_sum', '_count'].map((s) => `${name}${s}`);
  return [name];
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description?: string };
}

/** The alert rules of a PrometheusRule object. */
export function alertRules(rule: { spec: { groups: { name: string; rules: AlertRule[] }[] } }): AlertRule[] {
  return rule.spec.groups.flatMap((g) => g.rules);
}
