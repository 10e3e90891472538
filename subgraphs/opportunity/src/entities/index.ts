export * from './approval-request';
export * from './customer-ref';
import { ApprovalRequestSchema } from './approval-request';
import { CustomerRefSchema } from './customer-ref';
export const entities = [ApprovalRequestSchema, CustomerRefSchema];
