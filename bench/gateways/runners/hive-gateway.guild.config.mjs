// Opt-in variant "hive-gateway-guild-config": the configuration the public
// benchmark uses for Hive Gateway (gateways/hive-gateway/gateway.config.ts +
// run.sh --jit). Inbound in-flight request deduplication collapses identical
// concurrent requests into one execution; with a load generator that sends
// the same query on every connection this inflates throughput, so it is not
// part of the default set.
export const gatewayConfig = {
  inboundInflightRequestDeduplication: true,
  jit: true,
};
