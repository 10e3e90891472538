/**
 * Every domain event, declared once: its topic and its payload schema. Producers get the payload
 * type from here; consumers validate against the same schema and dead-letter what does not fit.
 */
import { z } from 'zod';

export const TOPICS = {
  user: 'user.events',
  customer: 'customer.events',
  salesActivity: 'sales-activity.events',
  opportunity: 'opportunity.events',
  notification: 'notification.events',
} as const;
export type Topic = (typeof TOPICS)[keyof typeof TOPICS];
export const ALL_TOPICS: Topic[] = Object.values(TOPICS);
export const dlqOf = (topic: string) => `${topic}.dlq`;
/** The one service that publishes each topic (the envelope's `source`). */
export const PRODUCERS: Record<Topic, string> = {
  'user.events': 'auth',
  'customer.events': 'customer',
  'sales-activity.events': 'sales-activity',
  'opportunity.events': 'opportunity',
  'notification.events': 'analytics',
};

const id = z.string().min(1);
const role = z.enum(['ADMIN', 'MANAGER', 'SALES', 'COMPLIANCE']);
const isoDate = z.string().datetime({ offset: true });
const sagaType = z.enum(['user-deletion', 'customer-deletion', 'onboarding', 'approval']);

const user = z.object({
  userId: id,
  email: z.string(),
  name: z.string(),
  role,
  active: z.boolean(),
  /** Approved by an ADMIN or MANAGER: may receive customers by automatic reassignment (absent in older events: false). */
  approved: z.boolean().optional(),
  /** Access tokens carrying a lower `tv` claim are revoked (role or active status changed, logout). */
  tokenVersion: z.number().int().min(0).optional(),
});
const customer = z.object({
  customerId: id,
  name: z.string(),
  assignedRepId: id.nullable(),
  size: z.string().nullable(),
  investmentProfile: z.string().nullable(),
});
const task = z.object({
  taskId: id,
  title: z.string(),
  assigneeId: id,
  customerId: id.nullable(),
  status: z.string(),
  priority: z.string(),
  dueAt: isoDate.nullable(),
});
const approval = z.object({
  requestId: id,
  customerId: id,
  requesterId: id,
  approverId: id.nullable(),
  title: z.string(),
  amount: z.number().nullable(),
  status: z.enum(['PENDING', 'APPROVED', 'REJECTED', 'RECALLED', 'CANCELLED']),
  comment: z.string().nullable(),
  requestedAt: isoDate,
  decidedAt: isoDate.nullable(),
});

const meeting = z.object({ meetingId: id, customerId: id, repId: id, startsAt: isoDate, summary: z.string() });

/** A step of a saga, emitted by the subgraph that took it; analytics keeps the read model. */
const sagaStep = z.object({
  sagaId: id,
  sagaType,
  subjectId: id,
  step: z.string(),
  status: z.enum(['STARTED', 'DONE', 'REFUSED', 'COMPENSATED', 'FAILED']),
  detail: z.string().nullable(),
  /** The saga ends with this step (COMPLETED, COMPENSATED or FAILED). */
  ends: z.enum(['COMPLETED', 'COMPENSATED', 'FAILED']).nullable(),
  /** Steps the saga is expected to take in all, when known, so the read model knows when it is done. */
  expectedSteps: z.array(z.string()).optional(),
});

function event<T extends z.ZodTypeAny>(topic: Topic, schema: T) {
  return { topic, schema };
}

export const EVENTS = {
  'user.created': event(TOPICS.user, user),
  'user.updated': event(TOPICS.user, user.extend({ changes: z.array(z.string()) })),
  'user.deleted': event(TOPICS.user, user.extend({ sagaId: id })),
  'user.login': event(TOPICS.user, z.object({ userId: id, email: z.string() })),
  'user.logout': event(TOPICS.user, z.object({ userId: id, tokenVersion: z.number().int().min(0).optional() })),
  'user.saga_step': event(TOPICS.user, sagaStep),

  'customer.created': event(TOPICS.customer, customer),
  'customer.updated': event(TOPICS.customer, customer.extend({ changes: z.array(z.string()) })),
  'customer.deleted': event(TOPICS.customer, customer.extend({ sagaId: id, requestedBy: id })),
  'customer.restored': event(TOPICS.customer, customer.extend({ sagaId: id })),
  'customer.reassigned': event(TOPICS.customer, customer.extend({ fromRepId: id.nullable(), sagaId: id.nullable() })),
  'customer.saga_step': event(TOPICS.customer, sagaStep),

  'meeting.created': event(TOPICS.salesActivity, meeting),
  /** updateMeeting: the meeting as it is now; `changes` names the fields that changed (startsAt, summary, nextAction). */
  'meeting.updated': event(TOPICS.salesActivity, meeting.extend({ changes: z.array(z.string()) })),
  /** deleteMeeting: the meeting as it was; copies stop counting it. */
  'meeting.deleted': event(TOPICS.salesActivity, meeting),
  'task.created': event(TOPICS.salesActivity, task),
  'task.updated': event(TOPICS.salesActivity, task),
  'task.completed': event(TOPICS.salesActivity, task.extend({ completedAt: isoDate })),
  'task.cancelled': event(TOPICS.salesActivity, task),
  'task.due_soon': event(TOPICS.salesActivity, task.extend({ dueAt: isoDate })),
  'sales-activity.saga_step': event(TOPICS.salesActivity, sagaStep),

  'approval.requested': event(TOPICS.opportunity, approval),
  /** updateApprovalRequest (requester, PENDING only): the request as it is now; `changes` names the fields that changed. */
  'approval.updated': event(TOPICS.opportunity, approval.extend({ changes: z.array(z.string()) })),
  'approval.approved': event(TOPICS.opportunity, approval),
  'approval.rejected': event(TOPICS.opportunity, approval),
  'approval.recalled': event(TOPICS.opportunity, approval),
  'approval.cancelled': event(TOPICS.opportunity, approval.extend({ reason: z.string() })),
  'opportunity.saga_step': event(TOPICS.opportunity, sagaStep),

  'notification.created': event(
    TOPICS.notification,
    z.object({
      notificationId: id,
      recipientId: id,
      type: z.enum(['APPROVAL_REQUESTED', 'APPROVAL_DECIDED', 'TASK_ASSIGNED', 'TASK_DUE_SOON', 'CUSTOMER_ASSIGNED', 'SYSTEM']),
      title: z.string(),
      entityType: z.string().nullable(),
      entityId: id.nullable(),
    }),
  ),
  'analytics.saga_step': event(TOPICS.notification, sagaStep),
} as const;

export type EventType = keyof typeof EVENTS;
export type EventData<T extends EventType> = z.infer<(typeof EVENTS)[T]['schema']>;
export type SagaStepData = z.infer<typeof sagaStep>;
export type SagaType = z.infer<typeof sagaType>;

/** The envelope format consumers understand; a newer one is not guessed at (dead-lettered, re-drivable). */
export const ENVELOPE_VERSION = 1;

export interface Envelope<T extends EventType = EventType> {
  id: string;
  type: T;
  version: number;
  occurredAt: string;
  source: string;
  aggregateId: string;
  actorId: string | null;
  correlationId: string;
  causationId: string | null;
  /**
   * The aggregate's version after this change, assigned by the owner's database when the outbox
   * row is written (1, 2, 3… per topic and key, in commit order). Copies apply only a newer one.
   */
  aggregateVersion?: number | null;
  data: EventData<T>;
}

const envelopeSchema = z.object({
  id: z.string().uuid(),
  type: z.string(),
  version: z.number().int(),
  occurredAt: isoDate,
  source: z.string(),
  aggregateId: z.string().min(1),
  actorId: z.string().nullable(),
  correlationId: z.string().min(1),
  causationId: z.string().nullable(),
  aggregateVersion: z.number().int().nullable().optional(),
  data: z.unknown(),
});

export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
}

/** A well-formed event of a type this build does not know (a newer producer): ignored, counted. */
export class UnknownEventTypeError extends InvalidEventError {
  constructor(readonly type: string) {
    super(`unknown event type ${type}`);
  }
}

/**
 * Parses raw bytes into a typed envelope, or throws InvalidEventError (not retriable). Tolerant
 * where a newer producer may differ: unknown fields are dropped, and a value outside an enum this
 * build knows is passed through as is (the handler does not act on it) instead of failing.
 */
export function parseEnvelope(raw: Buffer | string | null): Envelope {
  if (raw === null) throw new InvalidEventError('empty message');
  let json: unknown;
  try {
    json = JSON.parse(raw.toString());
  } catch {
    throw new InvalidEventError('message is not JSON');
  }
  const env = envelopeSchema.safeParse(json);
  if (!env.success) throw new InvalidEventError(`bad envelope: ${env.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  if (env.data.version < 1 || env.data.version > ENVELOPE_VERSION)
    throw new InvalidEventError(`envelope version ${env.data.version} is not supported (this build reads ${ENVELOPE_VERSION})`);
  const def = (EVENTS as Record<string, { schema: z.ZodTypeAny } | undefined>)[env.data.type];
  if (!def) throw new UnknownEventTypeError(env.data.type);
  const data = def.schema.safeParse(env.data.data);
  if (data.success) return { ...env.data, data: data.data } as Envelope;
  if (data.error.issues.every((i) => i.code === 'invalid_value')) {
    // Only enum values this build does not know: validate the rest with a known value standing in,
    // then hand the handler the payload with the producer's values.
    const stand = data.error.issues.map((i) => ({ path: i.path, known: (i as { values?: unknown[] }).values?.[0] }));
    const lenient = def.schema.safeParse(stand.reduce((d, { path, known }) => setAt(d, path, known), env.data.data));
    if (lenient.success)
      return {
        ...env.data,
        data: withValuesAt(
          lenient.data,
          env.data.data,
          data.error.issues.map((i) => i.path),
        ),
      } as Envelope;
  }
  throw new InvalidEventError(`bad ${env.data.type} payload: ${data.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
}

type Path = PropertyKey[];
const getAt = (value: unknown, path: Path): unknown => path.reduce<unknown>((v, k) => (v as Record<PropertyKey, unknown> | null)?.[k], value);
function setAt(value: unknown, path: Path, leaf: unknown): unknown {
  if (path.length === 0) return leaf;
  const [head, ...rest] = path as [PropertyKey, ...PropertyKey[]];
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<PropertyKey, unknown>;
  copy[head] = setAt(copy[head], rest, leaf);
  return copy;
}
/** The validated payload with the producer's unknown enum values put back. */
const withValuesAt = (parsed: unknown, original: unknown, paths: Path[]) => paths.reduce((d, p) => setAt(d, p, getAt(original, p)), parsed);

/**
 * Why an event must not be applied from `topic` (to be dead-lettered), or null: its type belongs to
 * another topic, or its source is not that topic's producer (a forged or misrouted event).
 */
export function misrouted(event: Envelope, topic: string): string | null {
  const expected = EVENTS[event.type].topic;
  if (expected !== topic) return `event type ${event.type} belongs to ${expected}, not ${topic}`;
  const producer = PRODUCERS[expected];
  if (event.source !== producer) return `source ${event.source} is not the producer of ${topic} (${producer})`;
  return null;
}

export function isEvent<T extends EventType>(e: Envelope, type: T): e is Envelope<T> {
  return e.type === type;
}
