/** The event path: envelope and catalogue, outbox, relay, inbox and consumer, the buses, their telemetry. */
export * from './catalogue';
export * from './bus';
export * from './outbox';
export * from './inbox';
export * from './relay';
export * from './consumer';
export * from './failures';
export * from './retention';
export * from './aggregate';
export * from './event-runtime';
export * from './buses';
export * from './telemetry';
export { IpcBus, type IpcLink } from './ipc-bus';
