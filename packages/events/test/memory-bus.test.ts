/** The in-process bus never skips a lagging consumer: it holds its messages and pushes back on publishers. */
import { BusBackpressureError, MemoryBus } from '../src/buses';

test('a lagging consumer gets every message in order; publishing fails loudly instead of dropping', async () => {
  const bus = new MemoryBus(undefined, 1_000);
  const seen: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sub = await bus.subscribe({
    groupId: 'slow',
    topics: ['t'],
    batchSize: 100,
    handleBatch: async (messages) => {
      await gate; // lags until released
      for (const m of messages) seen.push(Number(m.value!.toString()));
    },
  });
  let next = 0;
  const publishSome = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await bus.publish([{ topic: 't', key: 'k', value: String(next) }]);
      next += 1;
    }
  };
  await publishSome(1_000);
  await expect(publishSome(1)).rejects.toThrow(BusBackpressureError); // 1,000 behind: refused, not skipped
  release();
  while (seen.length < 1_000) await new Promise((r) => setTimeout(r, 5));
  await publishSome(25_000); // trimming happens, but only behind the consumer
  while (seen.length < next) await new Promise((r) => setTimeout(r, 5));
  expect(seen).toEqual(Array.from({ length: next }, (_, i) => i));
  await sub.stop();
  await bus.close();
});
