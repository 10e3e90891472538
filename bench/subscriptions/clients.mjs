/**
 * The subscribers of bench/subscriptions.ts, in a process of their own (so parsing N messages per
 * event does not share an event loop with the gateway it measures). Forked with an IPC channel;
 * messages from the parent:
 *
 *   { type: 'open', url, tokens: [t0, t1], n, perConnection, query, batch }
 *       opens ceil(n / perConnection) graphql-ws connections (connection c authenticates with
 *       tokens[c % 2]), `batch` connections at a time, each waiting for its connection_ack, and
 *       subscribes n times in all → { type: 'opened', connections }
 *   { type: 'collect', id, timeoutMs }
 *       waits until every subscriber has received the event whose payload id is `id`
 *       → { type: 'arrivals', id, times: number[] (one per subscriber), missing }
 *   { type: 'seen', ids }  → { type: 'seen', all: boolean } (has every subscriber received one of ids?)
 *   { type: 'clock', t }   → { type: 'clock', t, here } (here: this process's clock on receipt)
 *   { type: 'memory' }     → { type: 'memory', rssMB }
 *   { type: 'close' }      disposes every client, then exits.
 *
 * Clock: receipt times are performance.timeOrigin + performance.now() (ms since the epoch, sub-ms
 * resolution), taken in the subscriber's `next` callback (after graphql-ws parsed the message); the
 * parent reads the same expression, so both sides use the system's wall clock as sampled by Node.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const now = () => performance.timeOrigin + performance.now();
/** Per subscriber: event id → receipt time. */
const arrivals = [];
const clients = [];

function open({ url, tokens, n, perConnection, query, batch }) {
  const connections = Math.ceil(n / perConnection);
  return (async () => {
    for (let b = 0; b < connections; b += batch) {
      const acks = [];
      for (let c = b; c < Math.min(connections, b + batch); c++) {
        const client = createClient({
          url,
          webSocketImpl: WebSocket,
          retryAttempts: 0,
          lazy: false,
          connectionParams: { authorization: `Bearer ${tokens[c % 2]}` },
        });
        clients.push(client);
        acks.push(new Promise((resolve, reject) => {
          const offOk = client.on('connected', () => { offOk(); offErr(); resolve(); });
          const offErr = client.on('closed', (e) => { offOk(); offErr(); reject(new Error(`connection ${c} closed before its ack: ${e?.code} ${e?.reason}`)); });
        }));
        for (let s = c * perConnection; s < Math.min(n, (c + 1) * perConnection); s++) {
          const got = new Map();
          arrivals.push(got);
          client.subscribe({ query }, {
            next: (r) => {
              const t = now();
              const id = r.data?.approvalStatusChanged?.id;
              if (id && !got.has(id)) got.set(id, t);
            },
            error: (e) => console.error('subscriber error', JSON.stringify(e)),
            complete: () => {},
          });
        }
      }
      await Promise.all(acks);
    }
    return connections;
  })();
}

async function collect(id, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !arrivals.every((a) => a.has(id))) await new Promise((r) => setTimeout(r, 10));
  const times = arrivals.map((a) => a.get(id) ?? null);
  return { times, missing: times.filter((t) => t === null).length };
}

process.on('message', async (m) => {
  try {
    if (m.type === 'open') process.send({ type: 'opened', connections: await open(m) });
    else if (m.type === 'collect') process.send({ type: 'arrivals', id: m.id, ...(await collect(m.id, m.timeoutMs)) });
    else if (m.type === 'seen') process.send({ type: 'seen', all: arrivals.every((a) => m.ids.some((id) => a.has(id))) });
    else if (m.type === 'clock') process.send({ type: 'clock', t: m.t, here: now() });
    else if (m.type === 'memory') process.send({ type: 'memory', rssMB: Math.round(process.memoryUsage().rss / 2 ** 20) });
    else if (m.type === 'close') {
      await Promise.all(clients.map((c) => c.dispose()));
      process.exit(0);
    }
  } catch (err) {
    process.send({ type: 'error', message: String(err?.stack ?? err) });
  }
});
