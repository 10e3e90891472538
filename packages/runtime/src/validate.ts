/**
 * GraphQL inputs are parsed once, at the edge, with zod; a failure is BAD_USER_INPUT naming the field.
 */
import type { z } from 'zod';
import { badInput } from '@crm/errors';

export function parseInput<T extends z.ZodTypeAny>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || undefined;
  throw badInput(`${field ? `${field}: ` : ''}${issue?.message ?? 'invalid input'}`, field);
}
