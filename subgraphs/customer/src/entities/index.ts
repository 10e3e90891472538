export * from './customer';
export * from './rep';
import { Customer } from './customer';
import { Rep } from './rep';
export const entities = [Customer, Rep];
