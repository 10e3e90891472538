export * from './approval-request';
export * from './customer-ref';
import { ApprovalRequest } from './approval-request';
import { CustomerRef } from './customer-ref';
export const entities = [ApprovalRequest, CustomerRef];
