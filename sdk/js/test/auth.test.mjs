// Issue 12, test 2: a token that lives 5 s keeps a connection open for 30 s through in-band refreshes (the `auth`
// op); an expired token without refresh ends with close 4003, surfaced as a typed error.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client, RoomlogError } from "../dist/index.js";
import { backends, hs256, nextEvent, startLog, WS } from "./helpers.mjs";

for (const backend of backends()) {
  describe("token refresh (" + backend.name + ")", () => {
    let log, relay, jwt;
    const clients = [];
    before(async () => {
      log = await startLog(backend, "auth");
      jwt = hs256(log.dir);
      relay = await log.relay(["--jwt-hs256-secret-file", jwt.file, "--jwt-leeway", "-1s"]); // no leeway
    });
    after(async () => {
      for (const cl of clients) cl.close();
      await log?.close();
    });
    const token = (sub, seconds) => jwt.sign({ sub, exp: Math.floor(Date.now() / 1000) + seconds, rooms: ["auth-*"] });

    test("5 s tokens keep a connection open 30 s; without refresh it ends with 4003", async () => {
      const live = new Client({ url: relay.ws, WebSocket: WS, getToken: () => token("alice", 5) }).connect();
      const lapsing = new Client({ url: relay.ws, WebSocket: WS, getToken: () => token("bob", 5), refreshToken: false });
      clients.push(live, lapsing);
      const events = [];
      for (const ev of ["connected", "disconnected", "auth", "error"]) live.on(ev, (e) => events.push([ev, e]));
      const expired = nextEvent(lapsing, "disconnected", () => true, 20000);
      lapsing.connect();
      const room = live.room("auth-room");
      const seen = [];
      room.on("message", (m) => seen.push(m.data));
      await room.join();
      const conn = live.conn;
      const start = Date.now();

      const gone = await expired;
      assert.ok(gone.error instanceof RoomlogError);
      assert.equal(gone.code, 4003);
      assert.equal(gone.error.code, "token_expired");
      assert.equal(gone.error.closeCode, 4003);
      lapsing.close();

      // 30 s on 5 s tokens, publishing every 5 s: each ack proves the connection is authenticated.
      let published = 0;
      for (; Date.now() - start < 30000; published++) {
        await live.publish("auth-room", published);
        await new Promise((r) => setTimeout(r, 5000)); // the test's subject is the passage of time
      }
      assert.equal(live.conn, conn, "the same connection throughout");
      assert.equal(live.state, "connected");
      assert.deepEqual(events.filter(([e]) => e === "connected" || e === "disconnected" || e === "error").map(([e]) => e), ["connected"]);
      const refreshes = events.filter(([e, v]) => e === "auth" && v.refresh).length;
      assert.ok(refreshes >= 5, refreshes + " refreshes");
      // How many 5 s steps fit depends on when the lapsing token expired (exp has a one-second resolution): count
      // the publishes made, and every one of them must have been delivered, in order.
      assert.ok(published >= 5, published + " publishes");
      assert.deepEqual(seen, [...Array(published).keys()], "messages delivered");
      assert.equal(live.user, "alice");
    });
  });
}
