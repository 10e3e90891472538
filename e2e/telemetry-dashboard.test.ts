/**
 * The committed Grafana dashboard and the compose telemetry services kept in step with the code:
 * the dashboard is valid JSON, every panel query names only metrics the services export (the
 * kit's registry), and compose runs Jaeger, Prometheus (scraping every service) and Grafana
 * (provisioned with that dashboard), each health-checked. Reads files only; runs no container.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { registry } from '@crm/telemetry';
import { SUBGRAPHS } from '@crm/platform';
import { metricNames, seriesNames } from './support/promql';
import { composeAlertRules } from '../deploy/tools/alert-rules';

const ROOT = join(__dirname, '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

interface Panel {
  type: string;
  title: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every series name the services export (histograms as _bucket, _sum and _count). */
async function exportedNames(): Promise<Set<string>> {
  return new Set((await registry.getMetricsAsJSON()).flatMap((m) => seriesNames(m.name, String(m.type))));
}

test('the PromQL reader finds the metric names of an expression', () => {
  expect(metricNames('histogram_quantile(0.95, sum by (le, job) (rate(a_bucket{x="rate(b)"}[$__rate_interval])))')).toEqual(['a_bucket']);
  expect(metricNames('sum(x_total) / sum(y_total) or vector(0)')).toEqual(['x_total', 'y_total']);
});

const dashboard = JSON.parse(read('docker/grafana/dashboards/crm.json')) as { uid: string; title: string; panels: Panel[] };
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

test('the dashboard is valid JSON with panels that all query something', () => {
  expect(dashboard.uid).toBe('crm-overview');
  expect(panels.length).toBeGreaterThanOrEqual(10);
  for (const p of panels) expect([p.title, (p.targets ?? []).filter((t) => t.expr?.trim()).length > 0]).toEqual([p.title, true]);
});

test('every panel query names metrics the services export, and nothing else', async () => {
  const exported = await exportedNames();
  const unknown: string[] = [];
  for (const p of panels) {
    for (const t of p.targets ?? []) {
      const names = metricNames(t.expr!);
      if (names.length === 0) unknown.push(`${p.title}: no metric in ${t.expr}`);
      for (const n of names) if (!exported.has(n)) unknown.push(`${p.title}: ${n}`);
    }
  }
  expect(unknown).toEqual([]);
});

test('the dashboard covers what operators watch', () => {
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')).join('\n');
  for (const name of [
    'crm_graphql_requests_total',
    'crm_graphql_request_duration_seconds_bucket',
    'crm_graphql_errors_total',
    'crm_gateway_subgraph_fetch_duration_seconds_bucket',
    'crm_consumer_lag_messages',
    'crm_outbox_backlog_messages',
    'crm_events_dead_lettered_total',
    'crm_sagas_finished_total',
    'crm_ws_subscriptions',
  ])
    expect(exprs).toContain(name);
});

test('compose runs Jaeger, Prometheus and Grafana with health checks, on local ports only', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, { image?: string; healthcheck?: { test?: unknown }; ports?: string[]; volumes?: string[]; environment?: Record<string, string> }>;
  };
  const s = compose.services;
  expect(s.jaeger?.image).toMatch(/^jaegertracing\//);
  expect(s.prometheus?.image).toMatch(/^prom\/prometheus:/);
  expect(s.grafana?.image).toMatch(/^grafana\/grafana:/);
  for (const name of ['jaeger', 'prometheus', 'grafana']) {
    expect([name, s[name]!.healthcheck?.test]).toEqual([name, expect.anything()]);
    for (const port of s[name]!.ports ?? []) expect(port).toMatch(/^127\.0\.0\.1:/);
  }
  // Grafana gets the committed dashboard and data sources; our services send traces to Jaeger.
  expect(s.grafana!.volumes).toEqual(
    expect.arrayContaining(['./docker/grafana/dashboards:/var/lib/grafana/dashboards:ro', './docker/grafana/provisioning:/etc/grafana/provisioning:ro']),
  );
  const provisioning = read('docker/grafana/provisioning/dashboards/dashboards.yml');
  expect(provisioning).toContain('/var/lib/grafana/dashboards');
  for (const svc of ['gateway', ...SUBGRAPHS.map((x) => x.name)]) expect(s[svc]!.environment!.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://jaeger:4318');
});

test('Prometheus scrapes the gateway and every subgraph on their service ports', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { environment?: Record<string, string | number> }> };
  const config = parse(read('docker/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[] };
  const targets = config.scrape_configs.flatMap((c) => c.static_configs.flatMap((sc) => sc.targets.map((t) => [c.job_name, t, c.metrics_path ?? '/metrics'])));
  for (const svc of ['gateway', ...SUBGRAPHS.map((x) => x.name)]) {
    expect(targets).toContainEqual([svc, `${svc}:${compose.services[svc]!.environment!.PORT}`, '/metrics']);
  }
});

test("compose's Prometheus loads the same alert rules as Kubernetes (run `npm run codegen`)", () => {
  expect(read('docker/prometheus/alerts.yml')).toBe(composeAlertRules());
  expect((parse(read('docker/prometheus/prometheus.yml')) as { rule_files: string[] }).rule_files).toEqual(['/etc/prometheus/alerts.yml']);
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { volumes?: string[] }> };
  expect(compose.services.prometheus!.volumes).toContain('./docker/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro');
});
