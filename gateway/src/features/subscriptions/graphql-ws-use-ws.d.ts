/**
 * The repo compiles with moduleResolution "node", which ignores package "exports", so TypeScript
 * cannot see graphql-ws's `./use/ws` subpath by itself; node (require) resolves it fine at run time.
 * This re-exports its real declarations under the public name.
 */
declare module 'graphql-ws/use/ws' {
  export * from 'graphql-ws/dist/use/ws.cjs';
}
