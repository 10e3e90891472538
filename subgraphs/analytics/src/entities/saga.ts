import { p, type InferEntity } from '@mikro-orm/postgresql';
import { createdAtColumn, defineRow } from '@crm/database';

export type SagaStatus = 'RUNNING' | 'COMPLETED' | 'COMPENSATED' | 'FAILED' | 'TIMED_OUT';

/** The read model of one saga, built from the *.saga_step events of every subgraph. */
export const Saga = defineRow({
  name: 'Saga',
  tableName: 'sagas',
  properties: {
    id: p.text().primary(),
    type: p.text(),
    subjectId: p.text().fieldName('subject_id'),
    status: p
      .text()
      .$type<SagaStatus>()
      .default('RUNNING')
      .onCreate((): SagaStatus => 'RUNNING'),
    startedAt: p.datetime().fieldName('started_at'),
    endedAt: p.datetime().nullable().fieldName('ended_at'),
    expectedSteps: p.json<string[]>().nullable().fieldName('expected_steps'),
    /** customer-deletion: who asked for it (customer.deleted data.requestedBy). */
    requestedBy: p.text().nullable().fieldName('requested_by'),
    /** The REFUSED step event still waiting for requestedBy before its SYSTEM notification. */
    refusedEventId: p.uuid().nullable().fieldName('refused_event_id'),
    refusedDetail: p.text().nullable().fieldName('refused_detail'),
    createdAt: createdAtColumn(),
  },
});
export type Saga = InferEntity<typeof Saga>;

export const SagaStep = defineRow({
  name: 'SagaStep',
  tableName: 'saga_steps',
  properties: {
    id: p.uuid().primary(),
    sagaId: p.text().fieldName('saga_id'),
    name: p.text(),
    status: p.text(),
    at: p.datetime(),
    detail: p.text().nullable(),
    ends: p.text().nullable(),
    createdAt: createdAtColumn(),
  },
});
export type SagaStep = InferEntity<typeof SagaStep>;
