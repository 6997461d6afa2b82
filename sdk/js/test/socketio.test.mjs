// Issue 11, test case 1, in headless Chromium (Debian's, driven by playwright-core): the official socket.io-client
// (the browser bundle of the pinned npm package, testenv/socketio) connects to relay A with its default transports
// (polling, then the upgrade to WebSocket) and receives 1000 publishes a native /ws client makes on relay B: in
// order, once each, with the same `pos` a native /ws client in the room on relay A sees; its own publishes' acks
// resolve, and native clients see them at the acked positions. A screenshot goes to test-artifacts/ (gitignored).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { artifacts, backends, launchChromium, repoRoot, startLog, waitFor, WS } from "./helpers.mjs";

const N = 1000;
const bundle = join(repoRoot, "testenv/socketio/node_modules/socket.io-client/dist/socket.io.min.js");
const haveBundle = existsSync(bundle);
if (!haveBundle && process.env.ROOMLOG_REQUIRE_KAFKA === "1") {
  throw new Error(bundle + " is missing: run testenv/setup.sh (npm ci in testenv/socketio)");
}

/** A native /ws client: its welcome, every message of its rooms, and acks by request id. */
async function nativeClient(url) {
  const ws = new WS(url);
  const messages = [];
  const acks = new Map();
  const errors = [];
  let welcome;
  ws.on("message", (raw) => {
    const f = JSON.parse(raw.toString());
    if (f.op === "welcome") welcome = f;
    else if (f.op === "message") messages.push(f);
    else if (f.op === "ack") acks.set(String(f.id), f);
    else if (f.op === "error") errors.push(f);
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  await waitFor(() => welcome, "welcome from " + url);
  return {
    ws,
    messages,
    acks,
    errors,
    get conn() {
      return welcome.conn;
    },
    send: (f) => ws.send(JSON.stringify(f)),
    async join(room) {
      ws.send(JSON.stringify({ op: "join", room, id: "join-" + room }));
      await waitFor(() => acks.has("join-" + room) || errors.length, "join ack for " + room);
      assert.deepEqual(errors, []);
      return acks.get("join-" + room);
    },
  };
}

// Runs in the page: connects with the client's default transports and collects the room's "chat" events.
function pageConnect() {
  return new Promise((resolve, reject) => {
    const socket = window.io(location.origin, { reconnection: false });
    window.sio = { socket, events: [], transports: [] };
    socket.on("chat", (data, meta) => {
      window.sio.events.push({ data, meta });
      document.querySelector("#count").textContent = String(window.sio.events.length);
      const li = document.createElement("li");
      li.textContent = meta.pos + "  " + JSON.stringify(data);
      const list = document.querySelector("#log");
      list.prepend(li);
      if (list.children.length > 12) list.lastChild.remove();
    });
    socket.io.on("open", () => {
      window.sio.transports.push(socket.io.engine.transport.name);
      socket.io.engine.on("upgrade", (t) => window.sio.transports.push(t.name));
    });
    socket.on("connect", () => resolve(socket.id));
    socket.on("connect_error", (e) => reject(new Error("connect_error: " + e.message)));
  });
}

const page = `<title>socket.io-client on roomlog</title><style>body{font:14px system-ui;margin:2em} li{font:12px monospace}</style>
<h1>socket.io-client 4.8 on a roomlog relay</h1>
<p>transports: <span id="transports"></span> · room: <span id="room"></span> · events received: <b id="count">0</b></p>
<ol id="log"></ol>`;

for (const backend of haveBundle ? backends() : []) {
  describe("socket.io-client in Chromium (" + backend.name + ")", () => {
    let log, browser;
    const sockets = [];
    before(async () => {
      log = await startLog(backend, "sio-browser");
      browser = await launchChromium();
    });
    after(async () => {
      for (const s of sockets) s.ws.close();
      await browser?.close();
      await log?.close();
    });

    test("a client on relay A receives 1000 publishes made on relay B, in order, once, at native positions", async () => {
      const a = await log.relay();
      const b = await log.relay();
      const room = "sio-" + Date.now();

      // A document of relay A's origin (its /healthz; a page playwright answered itself would be blocked by
      // Chromium's local network access checks), so the client's requests are same-origin.
      const p = await browser.newPage({ viewport: { width: 1000, height: 640 } });
      const pageErrors = [];
      p.on("pageerror", (e) => pageErrors.push(e));
      await p.goto(a.http + "healthz");
      await p.evaluate((html) => (document.documentElement.innerHTML = html), page);
      await p.addScriptTag({ content: readFileSync(bundle, "utf8") });
      const sid = await p.evaluate(pageConnect);
      assert.ok(sid, "connected with a socket id");
      // The default transports: polling first, then the upgrade.
      await p.waitForFunction(() => window.sio.transports.join(",") === "polling,websocket", null, { timeout: 30000 }).catch(async (e) => {
        const seen = await p.evaluate(() => window.sio.transports);
        throw new Error("transports seen: " + seen.join(", ") + " (the upgrade did not happen): " + e.message);
      });
      const joinAck = await p.evaluate((room) => {
        document.querySelector("#room").textContent = room;
        document.querySelector("#transports").textContent = window.sio.transports.join(" → ");
        return window.sio.socket.timeout(30000).emitWithAck("join", room);
      }, room);
      assert.equal(joinAck.ok, true, JSON.stringify(joinAck));
      assert.match(joinAck.pos, /^\d+-\d+-/);

      const watcher = await nativeClient(a.ws); // a native client in the room, on the same relay
      sockets.push(watcher);
      await watcher.join(room);
      const pub = await nativeClient(b.ws);
      sockets.push(pub);
      for (let i = 0; i < N; i++) pub.send({ op: "publish", room, event: "chat", data: { n: i }, id: i });
      await waitFor(() => pub.acks.size >= N || pub.errors.length, N + " publish acks on relay B", 120000);
      assert.deepEqual(pub.errors, []);

      await waitFor(() => watcher.messages.length >= N, N + " messages at the native client", 120000);
      await p.waitForFunction((n) => window.sio.events.length >= n, N, { timeout: 120000 });
      await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive now
      const got = await p.evaluate(() => window.sio.events);
      assert.equal(got.length, N, "each publish once");
      for (let i = 0; i < N; i++) {
        const { data, meta } = got[i];
        const native = watcher.messages[i];
        if (data.n !== i) assert.fail("event " + i + " carries n=" + data.n + ": out of order or missing");
        assert.equal(meta.room, room);
        assert.equal(meta.from, pub.conn);
        assert.equal(meta.pos, native.pos, "event " + i + ": the position the native client saw");
        assert.equal(meta.pos, pub.acks.get(String(i)).pos, "event " + i + ": the position of the publisher's ack");
      }

      // The page's own publishes: acks resolve, and native clients get them at the acked positions.
      const acks = await p.evaluate(async (room) => {
        const out = [];
        for (let i = 0; i < 5; i++) out.push(await window.sio.socket.timeout(30000).emitWithAck("chat", room, { fromPage: i }));
        return out;
      }, room);
      for (const ack of acks) assert.equal(ack.ok, true, JSON.stringify(ack));
      await waitFor(() => watcher.messages.length >= N + 5, "the page's publishes at the native client");
      assert.deepEqual(
        watcher.messages.slice(N).map((m) => [m.pos, m.data.fromPage, m.from]),
        acks.map((ack, i) => [ack.pos, i, sid]),
      );
      await p.waitForFunction((n) => window.sio.events.length >= n, N + 5, { timeout: 30000 });
      assert.equal(await p.evaluate(() => window.sio.socket.io.engine.transport.name), "websocket");
      await p.screenshot({ path: join(artifacts, "socketio-client-1000-" + backend.name + ".png"), fullPage: true });
      assert.deepEqual(pageErrors, []);
      await p.evaluate(() => window.sio.socket.disconnect());
    });
  });
}
