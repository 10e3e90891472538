export * from './customer';
export * from './rep';
import { CustomerSchema } from './customer';
import { RepSchema } from './rep';
export const entities = [CustomerSchema, RepSchema];
