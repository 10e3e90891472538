/**
 * Links a GraphQL context to the HTTP request and response it came from, so Apollo plugins
 * (rate limits, login protection) can read the client address and set response headers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface RequestInfo {
  req: IncomingMessage;
  res: ServerResponse;
  ip: string;
}

// A symbol-keyed own property: Apollo Server shallow-copies the context per operation
// (Object.assign keeps enumerable symbol keys), so a WeakMap keyed by the object would miss.
const INFO = Symbol('crm.requestInfo');

export function bindRequest(context: object, req: IncomingMessage, res: ServerResponse, trustProxyHops: number): void {
  Object.defineProperty(context, INFO, { value: { req, res, ip: clientIp(req, trustProxyHops) }, enumerable: true });
}

export function requestOf(context: object): RequestInfo | undefined {
  return (context as { [INFO]?: RequestInfo })[INFO];
}

/**
 * The socket's address, or with TRUST_PROXY_HOPS = h > 0 the X-Forwarded-For entry h hops from
 * the right (the one our own outermost proxy appended; entries further left are client-supplied).
 */
export function clientIp(req: IncomingMessage, trustProxyHops: number): string {
  const socket = (req.socket?.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
  if (trustProxyHops <= 0) return socket;
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // A chain shorter than our proxies means the request did not come through them all: the socket's
  // address, never the leftmost entry (which the client wrote).
  return hops.length >= trustProxyHops ? hops[hops.length - trustProxyHops]! : socket;
}
