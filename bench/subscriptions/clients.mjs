/**
 * The subscribers of bench/subscriptions.ts, in a process of their own (so parsing N messages per
 * event does not share an event loop with the gateway it measures). Forked with an IPC channel;
 * messages from the parent:
 *
 *   { type: 'open', url, tokens: [t0, t1], n, perConnection, query, batch, client: 'ws' | 'graphql-ws' }
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
 * resolution), taken as the message arrives (client 'ws') or in the subscriber's `next` callback
 * (client 'graphql-ws', after it parsed and checked the message); the
 * parent reads the same expression, so both sides use the system's wall clock as sampled by Node.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const now = () => performance.timeOrigin + performance.now();
/** Per subscriber: event id → receipt time. */
const arrivals = [];
const clients = [];

/**
 * client 'ws': the graphql-transport-ws protocol spoken directly over `ws` (connection_init →
 * connection_ack → subscribe; `next` messages JSON.parse'd, nothing else), the receipt time taken
 * as the message arrives: far less CPU per message than the graphql-ws client on a machine whose
 * cores the gateway needs. client 'graphql-ws': graphql-ws's createClient.
 */
function openRaw({ url, tokens, n, perConnection, query, batch }) {
  const connections = Math.ceil(n / perConnection);
  return (async () => {
    for (let b = 0; b < connections; b += batch) {
      const acks = [];
      for (let c = b; c < Math.min(connections, b + batch); c++) {
        const first = c * perConnection;
        const count = Math.min(n, (c + 1) * perConnection) - first;
        for (let s = 0; s < count; s++) arrivals.push(new Map());
        const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
        clients.push({ dispose: () => socket.close(1000) });
        acks.push(
          new Promise((resolve, reject) => {
            let acked = false;
            socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${tokens[c % 2]}` } })));
            socket.on('message', (data) => {
              const t = now();
              const m = JSON.parse(data.toString());
              if (m.type === 'next') {
                const got = arrivals[first + Number(m.id)];
                const id = m.payload?.data?.approvalStatusChanged?.id;
                if (got && id && !got.has(id)) got.set(id, t);
              } else if (m.type === 'connection_ack' && !acked) {
                acked = true;
                for (let s = 0; s < count; s++) socket.send(JSON.stringify({ id: String(s), type: 'subscribe', payload: { query } }));
                resolve();
              } else if (m.type === 'error') {
                console.error('subscriber error', JSON.stringify(m));
              } else if (m.type === 'ping') {
                socket.send(JSON.stringify({ type: 'pong' }));
              }
            });
            socket.on('close', (code, reason) => {
              if (!acked) reject(new Error(`connection ${c} closed before its ack: ${code} ${reason}`));
            });
            socket.on('error', (err) => {
              if (!acked) reject(err);
            });
          }),
        );
      }
      await Promise.all(acks);
    }
    return connections;
  })();
}

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
        acks.push(
          new Promise((resolve, reject) => {
            const offOk = client.on('connected', () => {
              offOk();
              offErr();
              resolve();
            });
            const offErr = client.on('closed', (e) => {
              offOk();
              offErr();
              reject(new Error(`connection ${c} closed before its ack: ${e?.code} ${e?.reason}`));
            });
          }),
        );
        for (let s = c * perConnection; s < Math.min(n, (c + 1) * perConnection); s++) {
          const got = new Map();
          arrivals.push(got);
          client.subscribe(
            { query },
            {
              next: (r) => {
                const t = now();
                const id = r.data?.approvalStatusChanged?.id;
                if (id && !got.has(id)) got.set(id, t);
              },
              error: (e) => console.error('subscriber error', JSON.stringify(e)),
              complete: () => {},
            },
          );
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
    if (m.type === 'open') process.send({ type: 'opened', connections: await (m.client === 'graphql-ws' ? open(m) : openRaw(m)) });
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
