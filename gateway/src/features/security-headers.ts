/**
 * Security headers on every response (helmet's defaults, set by hand: no dependency for a dozen
 * constant headers). The API answers JSON only, so its CSP forbids everything; while the Apollo
 * Sandbox landing page is on (development), the CSP allows what the embedded Sandbox loads.
 */
import type { FeatureOptions, GatewayFeature } from './feature';

const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const SANDBOX_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline' https://embeddable-sandbox.cdn.apollographql.com",
  "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
  "font-src 'self' https://fonts.gstatic.com",
  "img-src 'self' data: https://apollo-server-landing-page.cdn.apollographql.com",
  "manifest-src 'self' https://apollo-server-landing-page.cdn.apollographql.com",
  'frame-src https://sandbox.embed.apollographql.com',
  "connect-src 'self' https://*.apollographql.com",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export function useSecurityHeaders({ config }: FeatureOptions): GatewayFeature {
  const headers: Record<string, string> = {
    'Content-Security-Policy': config.sandbox ? SANDBOX_CSP : API_CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-site',
    'X-DNS-Prefetch-Control': 'off',
    'X-Permitted-Cross-Domain-Policies': 'none',
    'Origin-Agent-Cluster': '?1',
    ...(config.production ? { 'Strict-Transport-Security': 'max-age=31536000; includeSubDomains' } : {}),
  };
  return {
    name: 'security-headers',
    before(_req, res) {
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
      return false;
    },
  };
}
