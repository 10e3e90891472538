export * from './task';
export * from './meeting';
export * from './customer-ref';
import { TaskSchema } from './task';
import { MeetingSchema } from './meeting';
import { CustomerRefSchema } from './customer-ref';
export const entities = [TaskSchema, MeetingSchema, CustomerRefSchema];
