/**
 * CORS from CORS_ORIGINS (comma-separated origins; `*` allows any). An allowed Origin gets
 * Access-Control-Allow-Origin (echoed, with Vary: Origin) and the rate-limit headers exposed;
 * preflights (OPTIONS) are answered here: 204 for an allowed origin, 403 otherwise. No
 * credentials (tokens travel in the Authorization header, never in cookies).
 */
import { sendGraphQLError } from '@crm/runtime';
import type { GatewayFeature } from './feature';
import type { FeatureOptions } from '.';

const ALLOW_HEADERS = 'Content-Type, Authorization, Apollo-Require-Preflight, X-Apollo-Operation-Name, Apollo-Client-Name, Apollo-Client-Version';
const EXPOSE_HEADERS = 'RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After';

export function useCors({ config }: FeatureOptions): GatewayFeature {
  const any = config.CORS_ORIGINS.includes('*');
  const allowed = new Set(config.CORS_ORIGINS.map((o) => o.replace(/\/$/, '').toLowerCase()));
  return {
    name: 'cors',
    before(req, res) {
      const origin = req.headers.origin;
      const ok = origin !== undefined && (any || allowed.has(origin.toLowerCase()));
      if (origin !== undefined) res.setHeader('Vary', 'Origin');
      if (ok) {
        res.setHeader('Access-Control-Allow-Origin', origin);
        res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
      }
      if (req.method !== 'OPTIONS') return false;
      if (origin !== undefined && !ok) {
        sendGraphQLError(res, 403, 'FORBIDDEN', 'Origin not allowed by CORS_ORIGINS');
        return true;
      }
      res.writeHead(204, {
        Allow: 'GET, POST, OPTIONS',
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': ALLOW_HEADERS,
        'Access-Control-Max-Age': '600',
        'Content-Length': '0',
      });
      res.end();
      return true;
    },
  };
}
