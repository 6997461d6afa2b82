// The client's own rules, against a scripted WebSocket (no relay): URL rotation, the offline queue, what is
// retried and what is not when a link drops, duplicate drop by position, a 1009 close, online/offline events.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Client } from "../dist/index.js";
import { waitFor } from "./helpers.mjs";

class FakeWS {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWS.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {}
  welcome() {
    this.readyState = 1;
    this.recv({ op: "welcome", conn: "c" + FakeWS.all.length, relay: "r" });
  }
  recv(f) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  closeWith(code) {
    this.onclose?.({ code, reason: "" });
  }
  last(op) {
    return this.sent.filter((f) => f.op === op).at(-1);
  }
}

let client;
afterEach(() => {
  client?.close();
  FakeWS.all = [];
});
const make = (opts = {}) => (client = new Client({ url: ["ws://a/ws", "ws://b/ws"], WebSocket: FakeWS, reconnect: { min: 1, max: 5 }, ...opts }));

test("reconnects over the URLs in turn", async () => {
  make().connect();
  FakeWS.all[0].closeWith(1006);
  await waitFor(() => FakeWS.all.length === 2, "a second attempt");
  assert.deepEqual(FakeWS.all.map((w) => w.url), ["ws://a/ws", "ws://b/ws"]);
  FakeWS.all[1].closeWith(1006);
  await waitFor(() => FakeWS.all.length === 3, "a third attempt");
  assert.equal(FakeWS.all[2].url, "ws://a/ws");
});

test("the offline queue is bounded in size and age", async () => {
  make({ queue: { max: 2, maxAge: 200 } }).connect();
  const a = client.publish("r", 1);
  const b = client.publish("r", 2);
  await assert.rejects(client.publish("r", 3), { code: "queue_full" });
  await assert.rejects(a, { code: "queue_timeout" });
  await assert.rejects(b, { code: "queue_timeout" });
});

test("a dropped link: publishes are resent with their mid, state writes reject, rooms rejoin with since", async () => {
  make().connect();
  const ws = FakeWS.all[0];
  ws.welcome();
  const room = client.room("r");
  const seen = [];
  room.on("message", (m) => seen.push(m.data));
  const joined = room.join();
  ws.recv({ op: "ack", id: ws.last("join").id, pos: "0-5-e" });
  await joined;
  ws.recv({ op: "message", room: "r", data: 1, pos: "0-6-e" });
  const pub = client.publish("r", "x");
  const incr = room.incr("n");
  const mid = ws.last("publish").mid;
  ws.closeWith(1006);
  await assert.rejects(incr, { code: "disconnected" });

  await waitFor(() => FakeWS.all.length === 2, "a reconnect");
  const ws2 = FakeWS.all[1];
  ws2.welcome();
  assert.equal(ws2.last("join").since, "0-6-e", "rejoin from the last position seen");
  assert.equal(ws2.last("publish").mid, mid, "the publish again, with its mid");
  assert.ok(ws2.sent.indexOf(ws2.last("join")) < ws2.sent.indexOf(ws2.last("publish")), "rooms first");
  ws2.recv({ op: "message", room: "r", data: 1, pos: "0-6-e" }); // already seen: dropped
  ws2.recv({ op: "message", room: "r", data: 2, pos: "0-7-e" });
  ws2.recv({ op: "ack", id: ws2.last("join").id, pos: "0-8-e", recovered: true });
  ws2.recv({ op: "ack", id: ws2.last("publish").id, pos: "0-4-e", duplicate: true });
  assert.deepEqual(await pub, { pos: "0-4-e", duplicate: true, mid });
  assert.deepEqual(seen, [1, 2]);
});

test("a 1009 close rejects the frame that caused it instead of resending it", async () => {
  make().connect();
  const ws = FakeWS.all[0];
  ws.welcome();
  const small = client.publish("r", "s");
  const big = client.publish("r", "b".repeat(60000));
  ws.closeWith(1009);
  await assert.rejects(big, { code: "message_too_big", closeCode: 1009 });
  await waitFor(() => FakeWS.all.length === 2, "a reconnect");
  FakeWS.all[1].welcome();
  const again = FakeWS.all[1].sent.filter((f) => f.op === "publish");
  assert.deepEqual(again.map((f) => f.data), ["s"]);
  FakeWS.all[1].recv({ op: "ack", id: again[0].id, pos: "0-1-e" });
  await small;
});

test("offline drops the link at once; online reconnects at once", async () => {
  const target = new EventTarget();
  globalThis.addEventListener = target.addEventListener.bind(target);
  globalThis.removeEventListener = target.removeEventListener.bind(target);
  try {
    make({ reconnect: { min: 60000, max: 60000 } }).connect();
    FakeWS.all[0].welcome();
    const drop = new Promise((r) => client.on("disconnected", r));
    target.dispatchEvent(new Event("offline"));
    assert.equal((await drop).error.code, "offline");
    target.dispatchEvent(new Event("online"));
    assert.equal(FakeWS.all.length, 2, "reconnected without waiting for the backoff");
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});

test("a frame over maxMessageBytes is refused before sending", async () => {
  make({ maxMessageBytes: 1000 }).connect();
  FakeWS.all[0].welcome();
  await assert.rejects(client.publish("r", "é".repeat(600)), { code: "message_too_big" });
  assert.equal(FakeWS.all[0].sent.filter((f) => f.op === "publish").length, 0);
});
