import { randomUUID } from 'node:crypto';
import { buildEnvelope, eventually, type EventData, type Identity } from '@crm/kit';
import type { TestStack } from '@crm/platform';

export const SA = 'sales-activity';
export { errorCode as code, identityOf } from '@crm/platform';

/** Raw SQL on the sales-activity database (reads for assertions only). */
export const sql = <T = Record<string, unknown>>(stack: TestStack, query: string, params: unknown[] = []) => stack.sql<T>(SA, query, params);

type CustomerEvent = 'customer.created' | 'customer.updated' | 'customer.reassigned' | 'customer.deleted' | 'customer.restored';

/** Publishes a customer.* envelope as the customer subgraph would (until/besides the real one). */
export async function publishCustomerEvent<T extends CustomerEvent>(
  stack: TestStack, type: T, data: EventData<T>, actorId: string | null, correlationId?: string,
): Promise<void> {
  const env = buildEnvelope('customer', type, data.customerId, data, { actorId, ...(correlationId ? { correlationId } : {}) });
  await stack.bus.publish([{ topic: 'customer.events', key: data.customerId, value: JSON.stringify(env) }]);
}

export function customerData(name: string, assignedRepId: string | null, customerId: string = randomUUID()): EventData<'customer.created'> {
  return { customerId, name, assignedRepId, size: null, investmentProfile: null };
}

/** Creates a customer in the local directory (by event) and waits until it is there. */
export async function seedCustomer(stack: TestStack, name: string, repId: string | null, actorId: string | null = repId): Promise<string> {
  const data = customerData(name, repId);
  await publishCustomerEvent(stack, 'customer.created', data, actorId);
  await eventually(async () => (await sql(stack, 'select id from customer_refs where id = ?', [data.customerId])).length === 1);
  return data.customerId;
}


/** A request straight to the sales-activity subgraph, signed as the gateway would sign it. */
export const direct = (stack: TestStack, who: Identity, query: string, variables: Record<string, unknown> = {}) => stack.signed(SA, who, query, variables);

export const TASK_FIELDS = 'id title description status priority dueAt completedAt createdAt customer { id } assignee { id }';
export const CREATE_TASK = `mutation($input: CreateTaskInput!) { createTask(input: $input) { ${TASK_FIELDS} } }`;
export const UPDATE_TASK = `mutation($id: ID!, $input: UpdateTaskInput!) { updateTask(id: $id, input: $input) { ${TASK_FIELDS} } }`;
export const COMPLETE_TASK = `mutation($id: ID!) { completeTask(id: $id) { ${TASK_FIELDS} } }`;
export const RECORD_MEETING = `mutation($input: RecordMeetingInput!) { recordMeeting(input: $input) { id startsAt summary nextAction createdAt customer { id } rep { id } } }`;
