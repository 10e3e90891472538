/**
 * Inbound request deduplication (INBOUND_DEDUPE): identical read-only requests from the same
 * caller, in flight at the same time, share one execution and get the same answer. It is not a
 * cache: nothing outlives the leading request. Conservative on purpose: only POSTed query text
 * with no `mutation` or `subscription` anywhere in it, no batches, no hash-only (APQ) requests.
 */
import type { IncomingMessage } from 'node:http';

const WRITES = /\b(mutation|subscription)\b/;

export function inboundDedupeKey(req: IncomingMessage, rawBody: string): string | undefined {
  if (rawBody.length === 0 || rawBody.trimStart().startsWith('[')) return undefined;
  if (!rawBody.includes('"query"') || WRITES.test(rawBody)) return undefined;
  const h = req.headers;
  // Whatever decides the answer is part of the key: who asks, and the headers CSRF and content negotiation read.
  const who = h.authorization ?? `anon:${req.socket.remoteAddress ?? ''}:${String(h['x-forwarded-for'] ?? '')}`;
  return [who, h['content-type'], h.accept, h['apollo-require-preflight'], h['x-apollo-operation-name'], rawBody].join('\n');
}
