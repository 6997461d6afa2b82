/**
 * The partition of the events topic that holds a room: Kafka's default partitioner, the one every relay and every
 * Kafka client uses (murmur2 of the room name's UTF-8 bytes, made positive, modulo the partition count).
 *
 * Relays run with `--follow interest` fold only the partitions their rooms need. A load balancer that hashes this
 * number (for example `wss://host/ws?group=<partitionOf(room, 16)>` behind nginx's `hash $arg_group consistent`)
 * sends all the clients of a partition's rooms to one relay, so each relay reads only its share of the log
 * (docs/operations.md, "Which partitions a relay folds").
 */
export function partitionOf(room: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError("partitions must be a positive integer, not " + partitions);
  }
  return (murmur2(new TextEncoder().encode(room)) & 0x7fffffff) % partitions;
}

/** Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit integer. */
function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  switch (length & 3) {
    case 3:
      h ^= data[tail + 2] << 16;
    // falls through
    case 2:
      h ^= data[tail + 1] << 8;
    // falls through
    case 1:
      h ^= data[tail];
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
