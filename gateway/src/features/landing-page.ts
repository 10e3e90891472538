import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { GatewayFeature } from './feature';
import type { FeatureOptions } from '.';

/** Apollo Sandbox on GET /graphql in development; off in production unless SANDBOX=true. */
export function useLandingPage({ config }: FeatureOptions): GatewayFeature {
  return {
    name: 'landing-page',
    apolloPlugins: [
      config.sandbox
        ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
        : ApolloServerPluginLandingPageDisabled(),
    ],
  };
}
