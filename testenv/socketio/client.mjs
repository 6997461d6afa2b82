// Drives the official socket.io-client against a test server built on
// roomlog's engineio and socketio packages (internal/socketio/interop_test.go).
//
//   node client.mjs <scenario> <url>
//
// The server answers the event "echo" with an ack carrying the same
// arguments (binary ones included) and closes the Engine.IO session, without
// a Socket.IO DISCONNECT, on "kick". Prints "ok" and exits 0 when the
// scenario holds; prints the failure and exits 1 otherwise.
import { io } from "socket.io-client";

const [scenario, url] = process.argv.slice(2);

function fail(msg) {
  console.log(`FAIL ${scenario}: ${msg}`);
  process.exit(1);
}

const deadline = setTimeout(() => fail("timed out"), 20000);

function check(cond, msg) {
  if (!cond) fail(msg);
}

function open(opts = {}, nsp = "") {
  return io(url + nsp, {
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    ...opts,
  });
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

async function connected(socket) {
  if (!socket.connected) {
    const [err] = await Promise.race([
      once(socket, "connect").then(() => []),
      once(socket, "connect_error"),
    ]);
    if (err) fail(`connect_error: ${err.message}`);
  }
  check(typeof socket.id === "string" && socket.id.length > 0, "no socket id");
}

// Waits for a condition the client only exposes as state.
async function until(cond) {
  while (!cond()) {
    await new Promise((r) => setTimeout(r, 5));
  }
}

function transport(socket) {
  return socket.io.engine.transport.name;
}

// ack sends "echo" with args and resolves with the ack's arguments.
function ack(socket, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(5000).emit("echo", ...args, (err, ...reply) => (err ? reject(err) : resolve(reply)));
  });
}

async function roundTrip(socket) {
  const sent = [{ text: "héllo ☃", n: 42, nested: [1, { a: null }] }, "second", 3.5, true];
  const got = await ack(socket, ...sent);
  check(JSON.stringify(got) === JSON.stringify(sent), `ack ${JSON.stringify(got)}, want ${JSON.stringify(sent)}`);
}

async function binaryRoundTrip(socket) {
  const a = Buffer.from([0, 1, 2, 255]);
  const b = Buffer.from("binary ☃");
  const got = await ack(socket, "label", a, { inner: b, list: [a] });
  check(got.length === 3 && got[0] === "label", `binary ack ${JSON.stringify(got)}`);
  check(Buffer.from(got[1]).equals(a), "first attachment differs");
  check(Buffer.from(got[2].inner).equals(b), "nested attachment differs");
  check(Buffer.from(got[2].list[0]).equals(a), "repeated attachment differs");
}

// kickAndReconnect: the server closes the session without a Socket.IO
// DISCONNECT; the client must see "transport close" and reconnect by itself.
async function kickAndReconnect(socket) {
  const firstId = socket.id;
  const disconnected = once(socket, "disconnect");
  const reconnected = once(socket.io, "reconnect");
  socket.emit("kick");
  const [reason] = await disconnected;
  check(reason === "transport close", `disconnect reason ${reason}, want transport close`);
  check(socket.active, "the client does not mean to reconnect");
  await reconnected;
  await connected(socket);
  check(socket.id !== firstId, "same socket id after reconnecting");
  await roundTrip(socket);
}

const scenarios = {
  // The client's defaults: polling, then the upgrade to WebSocket.
  async default() {
    const socket = open();
    await connected(socket);
    await roundTrip(socket);
    await until(() => transport(socket) === "websocket");
    await roundTrip(socket);
    await binaryRoundTrip(socket);
    socket.disconnect();
  },
  async websocket() {
    const socket = open({ transports: ["websocket"] });
    await connected(socket);
    check(transport(socket) === "websocket", `transport ${transport(socket)}`);
    await roundTrip(socket);
    await binaryRoundTrip(socket);
    socket.disconnect();
  },
  // Polling alone: binary attachments travel as base64 'b' packets.
  async polling() {
    const socket = open({ transports: ["polling"] });
    await connected(socket);
    await roundTrip(socket);
    await binaryRoundTrip(socket);
    check(transport(socket) === "polling", `transport ${transport(socket)}`);
    // Several acks in flight at once.
    const replies = await Promise.all([...Array(20).keys()].map((i) => ack(socket, i)));
    replies.forEach((r, i) => check(r[0] === i, `ack ${i} got ${JSON.stringify(r)}`));
    socket.disconnect();
  },
  async "reconnect-websocket"() {
    const socket = open();
    await connected(socket);
    await until(() => transport(socket) === "websocket");
    await kickAndReconnect(socket);
    socket.disconnect();
  },
  async "reconnect-polling"() {
    const socket = open({ transports: ["polling"] });
    await connected(socket);
    await kickAndReconnect(socket);
    socket.disconnect();
  },
  // The server pings again only once it has the previous pong: four pings
  // prove three pongs reached it, on each transport.
  async "heartbeat-polling"() {
    const socket = open({ transports: ["polling"] });
    let pings = 0;
    socket.io.on("ping", () => pings++);
    await connected(socket);
    await until(() => pings >= 4);
    check(socket.connected, "disconnected");
    await roundTrip(socket);
    socket.disconnect();
  },
  async "heartbeat-websocket"() {
    const socket = open({ transports: ["websocket"] });
    let pings = 0;
    socket.io.on("ping", () => pings++);
    await connected(socket);
    await until(() => pings >= 4);
    check(socket.connected, "disconnected");
    await roundTrip(socket);
    socket.disconnect();
  },
  async namespace() {
    const socket = open({ reconnection: false }, "/admin");
    const [err] = await once(socket, "connect_error");
    check(err.message === "Invalid namespace", `connect_error ${err.message}`);
    check(!socket.connected, "connected to /admin");
    socket.disconnect();
  },
};

const run = scenarios[scenario];
if (!run) fail("unknown scenario");
run().then(
  () => {
    clearTimeout(deadline);
    console.log("ok");
    process.exit(0);
  },
  (err) => fail(err && err.stack ? err.stack : String(err)),
);
