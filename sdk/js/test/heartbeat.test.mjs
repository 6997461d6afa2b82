// Issue 12, test 3: a relay frozen with SIGSTOP (its sockets stay open, nothing answers) is detected within the
// heartbeat window, and the client moves to the other relay, where its room resumes.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../dist/index.js";
import { backends, nextEvent, startLog, WS } from "./helpers.mjs";

const interval = 500;
const timeout = 2000;

for (const backend of backends()) {
  describe("heartbeat (" + backend.name + ")", () => {
    let log, a, b, client;
    before(async () => {
      log = await startLog(backend, "heartbeat");
      a = await log.relay();
      b = await log.relay();
    });
    after(async () => {
      client?.close();
      await log?.close();
    });

    test("a SIGSTOPped relay is left within the heartbeat window", async () => {
      client = new Client({ url: [a.ws, b.ws], WebSocket: WS, heartbeat: { interval, timeout }, reconnect: { min: 100, max: 1000 } });
      client.connect();
      const room = client.room("hb");
      const seen = [];
      room.on("message", (m) => seen.push(m.data));
      await room.join();
      assert.equal(client.url, a.ws);
      await client.publish("hb", "before");

      const dropped = nextEvent(client, "disconnected");
      const moved = nextEvent(client, "connected", (c) => c.url === b.ws);
      const stoppedAt = Date.now();
      a.kill("SIGSTOP");
      const drop = await dropped;
      const detectedIn = Date.now() - stoppedAt;
      assert.equal(drop.error.code, "heartbeat_timeout");
      assert.ok(detectedIn <= timeout + interval + 1000, "detected in " + detectedIn + " ms");
      await moved;

      await nextEvent(room, "subscribed");
      await client.publish("hb", "after");
      await new Promise((resolve) => (seen.includes("after") ? resolve() : room.on("message", (m) => m.data === "after" && resolve())));
      assert.deepEqual(seen, ["before", "after"]);
    });
  });
}
