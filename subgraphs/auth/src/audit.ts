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
  const entry = auditEntry(em, input);
  em.persist(entry);
  return entry;
}

/** A new audit entry, not yet written (the event consumer inserts a batch's at once). */
export function auditEntry(em: EntityManager, input: AuditInput): AuditEntry {
  return em.create(
    AuditEntry,
    {
      id: randomUUID(),
      actorId: input.actorId,
      action: input.action,
      entityType: input.entityType,
      entityId: input.entityId ?? null,
      details: input.details ?? null,
      eventId: input.eventId ?? null,
      ...(input.at ? { createdAt: input.at } : {}),
    },
    { persist: false },
  );
}
