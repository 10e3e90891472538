import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { AuditEntry } from './entities';

export interface AuditInput {
  actorId: string | null;
  action: string;
  entityType: string;
  entityId?: string | null;
  details?: Record<string, unknown> | null;
  eventId?: string | null;
  at?: Date;
}

/** Stages an audit entry in the caller's unit of work. */
export function stageAudit(em: EntityManager, input: AuditInput): AuditEntry {
  const entry = auditEntry(input);
  em.persist(entry);
  return entry;
}

/** A new audit entry, not yet written (the event consumer inserts a batch's at once). */
export function auditEntry(input: AuditInput): AuditEntry {
  const entry = new AuditEntry();
  entry.id = randomUUID();
  entry.actorId = input.actorId;
  entry.action = input.action;
  entry.entityType = input.entityType;
  entry.entityId = input.entityId ?? null;
  entry.details = input.details ?? null;
  entry.eventId = input.eventId ?? null;
  if (input.at) entry.createdAt = input.at;
  return entry;
}
