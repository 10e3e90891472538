/**
 * The due-soon job: open tasks due within 24 h whose due_soon_for differs from due_at get one
 * task.due_soon each, and due_soon_for = due_at in the same transaction — one event per task per
 * due date however often it runs; a new due date re-arms it. Rows are claimed FOR UPDATE SKIP
 * LOCKED, so two replicas running at once never emit for the same task.
 */
import type { Job, SubgraphRuntime } from '@crm/runtime';
import type { PlatformConfig } from '@crm/config';

const BATCH = 500;

interface DueRow {
  id: string;
  title: string;
  assignee_id: string;
  customer_id: string | null;
  status: string;
  priority: string;
  due_at: Date | string;
}

/** One pass; resolves with how many task.due_soon events were staged. */
export async function runDueSoon(runtime: SubgraphRuntime, now = new Date()): Promise<number> {
  const horizon = new Date(now.getTime() + 24 * 3_600_000);
  return runtime.fork().transactional(async (em) => {
    const rows = await em.execute<DueRow[]>(
      `SELECT id, title, assignee_id, customer_id, status, priority, due_at FROM tasks
       WHERE status IN ('TODO', 'IN_PROGRESS') AND removed_by_saga IS NULL
         AND due_at IS NOT NULL AND due_at > ? AND due_at <= ?
         AND due_soon_for IS DISTINCT FROM due_at
       ORDER BY due_at, id LIMIT ? FOR UPDATE SKIP LOCKED`,
      [now, horizon, BATCH],
    );
    if (rows.length === 0) return 0;
    for (const r of rows) {
      const dueAt = new Date(r.due_at).toISOString();
      runtime.emit(
        em,
        'task.due_soon',
        r.id,
        {
          taskId: r.id,
          title: r.title,
          assigneeId: r.assignee_id,
          customerId: r.customer_id,
          status: r.status,
          priority: r.priority,
          dueAt,
        },
        { actorId: null },
      );
    }
    // due_soon_for is bookkeeping, not a change of the task: the version stays as it is
    // a Postgres array literal: MikroORM's formatQuery would expand a JS array into a list
    await em.execute('UPDATE tasks SET due_soon_for = due_at WHERE id = ANY(?::uuid[])', [`{${rows.map((r) => r.id).join(',')}}`]);
    return rows.length;
  });
}

export const dueSoonJob: Job = {
  name: 'due-soon',
  intervalMs: (config: PlatformConfig) => config.DUE_SOON_INTERVAL_MS,
  async run(runtime: SubgraphRuntime) {
    const n = await runDueSoon(runtime);
    if (n > 0) {
      runtime.logger.info({ count: n }, 'task.due_soon staged');
      runtime.relay?.poke();
    }
  },
};
