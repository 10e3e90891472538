export * from './task';
export * from './meeting';
export * from './customer-ref';
import { Task } from './task';
import { Meeting } from './meeting';
import { CustomerRef } from './customer-ref';
export const entities = [Task, Meeting, CustomerRef];
