import { randomUUID } from 'node:crypto';
import { eventually, type TestSubgraph } from '@crm/testing';
import { type EventData } from '@crm/events';

export const SA = 'sales-activity';
/** The first error's extensions.code of a result. */
export const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

/** Raw SQL on the sales-activity database (reads for assertions only). */
export const sql = <T = Record<string, unknown>>(sa: TestSubgraph, query: string, params: unknown[] = []) => sa.sql<T>(query, params);

type CustomerEvent = 'customer.created' | 'customer.updated' | 'customer.reassigned' | 'customer.deleted' | 'customer.restored';

/** Publishes a customer.* event as the customer subgraph would. */
export async function publishCustomerEvent<T extends CustomerEvent>(sa: TestSubgraph, type: T, data: EventData<T>, actorId: string | null, correlationId?: string): Promise<void> {
  await sa.publish(type, data.customerId, data, { actorId, ...(correlationId ? { correlationId } : {}) });
}

export function customerData(name: string, assignedRepId: string | null, customerId: string = randomUUID()): EventData<'customer.created'> {
  return { customerId, name, assignedRepId, size: null, investmentProfile: null };
}

/** Creates a customer in the local directory (by event) and waits until it is there. */
export async function seedCustomer(sa: TestSubgraph, name: string, repId: string | null, actorId: string | null = repId): Promise<string> {
  const data = customerData(name, repId);
  await publishCustomerEvent(sa, 'customer.created', data, actorId);
  await eventually(async () => (await sql(sa, 'select id from customer_refs where id = ?', [data.customerId])).length === 1);
  return data.customerId;
}

export const TASK_FIELDS = 'id title description status priority dueAt completedAt createdAt customer { id } assignee { id }';
export const CREATE_TASK = `mutation($input: CreateTaskInput!) { createTask(input: $input) { ${TASK_FIELDS} } }`;
export const UPDATE_TASK = `mutation($id: ID!, $input: UpdateTaskInput!) { updateTask(id: $id, input: $input) { ${TASK_FIELDS} } }`;
export const COMPLETE_TASK = `mutation($id: ID!) { completeTask(id: $id) { ${TASK_FIELDS} } }`;
export const RECORD_MEETING = `mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id startsAt summary nextAction createdAt customer { id } rep { id } } }`;
