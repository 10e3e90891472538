import { EntitySchema } from '@mikro-orm/postgresql';

export type SagaStatus = 'RUNNING' | 'COMPLETED' | 'COMPENSATED' | 'FAILED' | 'TIMED_OUT';

/** The read model of one saga, built from the *.saga_step events of every subgraph. */
export class Saga {
  id!: string;
  type!: string;
  subjectId!: string;
  status: SagaStatus = 'RUNNING';
  startedAt!: Date;
  endedAt: Date | null = null;
  expectedSteps: string[] | null = null;
  /** customer-deletion: who asked for it (customer.deleted data.requestedBy). */
  requestedBy: string | null = null;
  /** The REFUSED step event still waiting for requestedBy before its SYSTEM notification. */
  refusedEventId: string | null = null;
  refusedDetail: string | null = null;
  createdAt: Date = new Date();
}

export const SagaSchema = new EntitySchema<Saga>({
  class: Saga,
  tableName: 'sagas',
  properties: {
    id: { type: 'text', primary: true },
    type: { type: 'text' },
    subjectId: { type: 'text', fieldName: 'subject_id' },
    status: { type: 'text' },
    startedAt: { type: 'datetime', fieldName: 'started_at' },
    endedAt: { type: 'datetime', nullable: true, fieldName: 'ended_at' },
    expectedSteps: { type: 'json', nullable: true, fieldName: 'expected_steps' },
    requestedBy: { type: 'text', nullable: true, fieldName: 'requested_by' },
    refusedEventId: { type: 'uuid', nullable: true, fieldName: 'refused_event_id' },
    refusedDetail: { type: 'text', nullable: true, fieldName: 'refused_detail' },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});

export class SagaStep {
  id!: string;
  sagaId!: string;
  name!: string;
  status!: string;
  at!: Date;
  detail: string | null = null;
  ends: string | null = null;
  createdAt: Date = new Date();
}

export const SagaStepSchema = new EntitySchema<SagaStep>({
  class: SagaStep,
  tableName: 'saga_steps',
  properties: {
    id: { type: 'uuid', primary: true },
    sagaId: { type: 'text', fieldName: 'saga_id' },
    name: { type: 'text' },
    status: { type: 'text' },
    at: { type: 'datetime' },
    detail: { type: 'text', nullable: true },
    ends: { type: 'text', nullable: true },
    createdAt: { type: 'datetime', fieldName: 'created_at' },
  },
});
