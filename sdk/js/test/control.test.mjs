// Issue 15: server-side control as the SDK sees it. A room the backend removes the user from emits `removed` and
// stays left; a revoked token ends the connection with 4010 (`revoked`) and the client reconnects with a new token
// from getToken(); a disconnect (4011, `server_disconnect`) closes the client for good.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "../dist/index.js";
import { backends, hs256, nextEvent, startLog, waitFor, WS } from "./helpers.mjs";

const apiKey = "sdk-test-api-key-0123456789";

for (const backend of backends()) {
  describe("server-side control (" + backend.name + ")", () => {
    let log, relay, jwt;
    const clients = [];
    before(async () => {
      log = await startLog(backend, "control");
      jwt = hs256(log.dir);
      const keys = join(log.dir, "api-keys");
      writeFileSync(keys, apiKey + "\n");
      relay = await log.relay(["--jwt-hs256-secret-file", jwt.file, "--api-key-file", keys]);
    });
    after(async () => {
      for (const cl of clients) cl.close();
      await log?.close();
    });
    // iat has a resolution of a second: the revocation below cuts at now + 2 s, and tokens issued after it say
    // now + 3 s.
    let iatShift = 0;
    const now = () => Math.floor(Date.now() / 1000);
    const token = (sub) => jwt.sign({ sub, iat: now() + iatShift, exp: now() + 3600, rooms: ["*"] });
    const api = async (endpoint, body) => {
      const res = await fetch(relay.http + "api/" + endpoint, {
        method: "POST",
        headers: { Authorization: "Bearer " + apiKey },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200, endpoint + ": " + (await res.text()));
    };

    test("removed from a room, revoked, disconnected", async () => {
      const cl = new Client({ url: relay.ws, WebSocket: WS, getToken: () => token("alice") }).connect();
      clients.push(cl);
      const room = cl.room("lobby");
      await room.join();
      const removed = nextEvent(room, "removed");
      await api("remove", { room: "lobby", user: "alice" });
      assert.equal((await removed).reason, "removed");

      const conn = cl.conn;
      const revoked = nextEvent(cl, "disconnected");
      const back = nextEvent(cl, "connected");
      const cut = now() + 2;
      iatShift = 3;
      await api("revoke", { user: "alice", issued_before: cut });
      const gone = await revoked;
      assert.equal(gone.code, 4010);
      assert.equal(gone.error.code, "revoked");
      await back; // with a token issued after the revocation
      assert.notEqual(cl.conn, conn);
      await cl.publish("lobby", "after the revocation");

      const ended = nextEvent(cl, "disconnected");
      await api("disconnect", { user: "alice" });
      const d = await ended;
      assert.equal(d.code, 4011);
      assert.equal(d.error.code, "server_disconnect");
      await waitFor(() => cl.state === "closed", "the client closed for good");
    });
  });
}
