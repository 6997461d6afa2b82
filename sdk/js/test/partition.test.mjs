// partitionOf: the SDK's copy of Kafka's default partitioner agrees with the relay's, which reports each join's
// partition in its position ("<partition>-<offset>-<epoch>"), for ASCII and multi-byte room names of every length
// modulo 4; bad partition counts are refused.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, partitionOf } from "../dist/index.js";
import { startLog, WS } from "./helpers.mjs";

describe("partitionOf", () => {
  let log, relay, client;
  before(async () => {
    log = await startLog({ name: "kfake" }, "partition");
    relay = await log.relay(["--partitions", "16"]);
  });
  after(async () => {
    client?.close();
    await log?.close();
  });

  test("the relay puts each room where partitionOf says", async () => {
    client = new Client({ url: relay.ws, WebSocket: WS });
    client.connect();
    const names = [];
    for (let i = 0; i < 40; i++) names.push("room-" + "x".repeat(i % 7) + i);
    names.push("é", "日本語の部屋", "emoji-🎉", "a", "ab", "abc", "abcd");
    const seen = new Set();
    for (const name of names) {
      const { pos } = await client.room(name).join();
      const partition = Number(pos.split("-")[0]);
      assert.equal(partitionOf(name, 16), partition, name);
      seen.add(partition);
    }
    assert.ok(seen.size > 8, "rooms over " + seen.size + " partitions only");
  });

  test("a partition count that is not a positive integer is refused", () => {
    for (const bad of [0, -1, 1.5, NaN]) assert.throws(() => partitionOf("r", bad), RangeError);
    assert.equal(partitionOf("any", 1), 0);
  });
});
