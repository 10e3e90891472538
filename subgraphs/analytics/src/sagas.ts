/**
 * The saga read model behind Query.saga: `sagas` + `saga_steps`, from every *.saga_step event.
 * Steps come from different topics, so in any order: the saga row is upserted by whichever step
 * (or customer.deleted / user.deleted) arrives first; expectedSteps is kept from the step that
 * carries it; after each step the status is recomputed (COMPLETED when every expected step has a
 * DONE row; the `ends` of a step wins and is final). All writes are upserts: replays change nothing.
 * A saga still RUNNING after SAGA_TIMEOUT_MS is marked TIMED_OUT by a job (logged as an error with
 * its missing steps); a late step still finishes it.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { sagaFinished, type Envelope, type SagaStepData } from '@crm/events';
import { type Job, type SubgraphRuntime } from '@crm/runtime';
import { type PlatformConfig } from '@crm/config';

export interface SagaRow {
  id: string;
  type: string;
  subject_id: string;
  status: string;
  requested_by: string | null;
  refused_event_id: string | null;
  refused_detail: string | null;
}

/** Creates the saga row if missing (RUNNING) and returns its current state (locked until commit). */
export async function upsertSaga(
  em: EntityManager,
  saga: { id: string; type: string; subjectId: string; at: Date; expectedSteps?: string[] | null; requestedBy?: string | null },
): Promise<SagaRow> {
  const rows = await em.execute<SagaRow[]>(
    `INSERT INTO sagas (id, type, subject_id, status, started_at, expected_steps, requested_by, created_at)
     VALUES (?, ?, ?, 'RUNNING', ?, ?::jsonb, ?, ?)
     ON CONFLICT (id) DO UPDATE SET
       expected_steps = COALESCE(sagas.expected_steps, EXCLUDED.expected_steps),
       requested_by = COALESCE(sagas.requested_by, EXCLUDED.requested_by),
       started_at = LEAST(sagas.started_at, EXCLUDED.started_at)
     RETURNING id, type, subject_id, status, requested_by, refused_event_id, refused_detail`,
    [saga.id, saga.type, saga.subjectId, saga.at, saga.expectedSteps ? JSON.stringify(saga.expectedSteps) : null, saga.requestedBy ?? null, new Date()],
  );
  return rows[0]!;
}

/** Records one step and recomputes the saga's status. */
export async function applySagaStep(em: EntityManager, event: Envelope, step: SagaStepData): Promise<SagaRow> {
  const at = new Date(event.occurredAt);
  const saga = await upsertSaga(em, { id: step.sagaId, type: step.sagaType, subjectId: step.subjectId, at, expectedSteps: step.expectedSteps ?? null });
  await em.execute(
    `INSERT INTO saga_steps (id, saga_id, name, status, at, detail, ends, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (saga_id, name, status) DO NOTHING`,
    [randomUUID(), step.sagaId, step.step, step.status, at, step.detail, step.ends, new Date()],
  );
  const finished = await em.execute<{ type: string; status: string; seconds: number | string | null }[]>(
    `UPDATE sagas s SET
       status = COALESCE(e.ends, 'COMPLETED'),
       ended_at = COALESCE(e.at, (SELECT max(at) FROM saga_steps d WHERE d.saga_id = s.id AND d.status = 'DONE'))
     FROM (SELECT
             (SELECT ends FROM saga_steps x WHERE x.saga_id = ? AND x.ends IS NOT NULL ORDER BY at, id LIMIT 1) AS ends,
             (SELECT at FROM saga_steps x WHERE x.saga_id = ? AND x.ends IS NOT NULL ORDER BY at, id LIMIT 1) AS at) e
     WHERE s.id = ? AND s.status IN ('RUNNING', 'TIMED_OUT') AND (
       e.ends IS NOT NULL OR (
         s.expected_steps IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM jsonb_array_elements_text(s.expected_steps) AS want(name)
           WHERE NOT EXISTS (SELECT 1 FROM saga_steps d WHERE d.saga_id = s.id AND d.name = want.name AND d.status = 'DONE'))))
     RETURNING s.type, s.status, EXTRACT(EPOCH FROM s.ended_at - s.started_at)::float8 AS seconds`,
    [step.sagaId, step.sagaId, step.sagaId],
  );
  // A saga reaches its final status once (status = 'RUNNING' guards the update): count it then.
  for (const f of finished) sagaFinished(f.type, f.status, Number(f.seconds ?? 0));
  return saga;
}

/** Marks RUNNING sagas older than `timeoutMs` TIMED_OUT; returns them with their missing steps. */
export async function timeOutSagas(em: EntityManager, timeoutMs: number): Promise<{ id: string; type: string; subject_id: string; missing: string[] | null }[]> {
  return em.execute(
    `UPDATE sagas s SET status = 'TIMED_OUT', timed_out_at = now()
     WHERE s.status = 'RUNNING' AND s.started_at < now() - make_interval(secs => ?)
     RETURNING s.id, s.type, s.subject_id,
       (SELECT jsonb_agg(want.name) FROM jsonb_array_elements_text(s.expected_steps) AS want(name)
        WHERE NOT EXISTS (SELECT 1 FROM saga_steps d WHERE d.saga_id = s.id AND d.name = want.name AND d.status = 'DONE')) AS missing`,
    [timeoutMs / 1000],
  );
}

export const sagaTimeoutJob: Job = {
  name: 'saga-timeout',
  intervalMs: (config: PlatformConfig) => Math.max(1000, Math.min(30_000, Math.floor(config.SAGA_TIMEOUT_MS / 4))),
  async run(runtime: SubgraphRuntime) {
    const timedOut = await timeOutSagas(runtime.fork(), runtime.config.SAGA_TIMEOUT_MS);
    for (const s of timedOut) {
      runtime.logger.error(
        { sagaId: s.id, sagaType: s.type, subjectId: s.subject_id, missingSteps: s.missing ?? 'unknown', timeoutMs: runtime.config.SAGA_TIMEOUT_MS },
        'saga timed out: its missing steps have not arrived (it still finishes if they do)',
      );
    }
  },
};
