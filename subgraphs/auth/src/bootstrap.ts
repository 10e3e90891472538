import type { SubgraphRuntime } from '@crm/runtime';
import { createUser, findByEmail } from './users';

/** With ADMIN_EMAIL and ADMIN_PASSWORD set, makes sure that ADMIN exists (the only way to get one in production). */
export async function ensureAdmin(runtime: SubgraphRuntime): Promise<void> {
  const { ADMIN_EMAIL: email, ADMIN_PASSWORD: password } = runtime.config;
  if (!email || !password) return;
  const em = runtime.fork();
  if (await findByEmail(em, email)) return;
  await createUser(em, { email, password, name: 'Administrator', role: 'ADMIN' }, null, { approved: true });
  runtime.logger.info({ email }, 'created the initial ADMIN user');
}
