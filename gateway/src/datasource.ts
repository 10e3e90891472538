/**
 * Every subgraph fetch carries the caller's identity, signed with INTERNAL_SECRET; subgraphs
 * refuse anything unsigned, so the gateway is the only door.
 */
import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { signIdentity, type Identity } from '@crm/kit';

export interface GatewayContext {
  identity: Identity | null;
  /** Set on the gateway's own resolution of a subscription event for a subscriber (not a client request). */
  liveSubscription?: boolean;
}

export class SignedDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(url: string, private readonly secret: string) {
    super({ url });
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    const headers = signIdentity((context as Partial<GatewayContext>).identity ?? null, this.secret);
    for (const [name, value] of Object.entries(headers)) request.http?.headers.set(name, value);
  }
}
