// The original: a Socket.IO 4.8 chat scaled the way it is done today. Node's cluster runs WORKERS processes behind
// one port; @socket.io/sticky routes every HTTP request of a session to the worker that holds it (polling needs
// that); @socket.io/redis-adapter on a redis-server broadcasts each room's events to the other workers (and to
// other hosts running the same). The server-side logic (lib/logic.mjs) runs in the event handlers: a filter that
// refuses banned words before anyone sees them, and a bot that answers /roll in the room.
//
// Env: PORT (8090), HOST (127.0.0.1), REDIS_URL (redis://127.0.0.1:6379), WORKERS (2).
import cluster from "node:cluster";
import http from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { setupMaster, setupWorker } from "@socket.io/sticky";
import { createClient } from "redis";
import { Server } from "socket.io";
import { answer, botName, invalidChat, refusal } from "../lib/logic.mjs";
import { pageHandler } from "../lib/static.mjs";

const port = Number(process.env.PORT || 8090);
const host = process.env.HOST || "127.0.0.1";
const workers = Number(process.env.WORKERS || 2);

// The ack callback, when the client asked for one (it is always the last argument).
function takeAck(args) {
  return typeof args[args.length - 1] === "function" ? args.pop() : () => {};
}

function validRoom(room) {
  // eslint-disable-next-line no-control-regex
  return typeof room === "string" && room.length > 0 && Buffer.byteLength(room) <= 200 && !/[\u0000-\u001f\u007f]/.test(room);
}

async function worker() {
  const pub = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379" });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error("redis:", e.message));
  sub.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer(pageHandler({ url: "", server: "Socket.IO 4.8, " + workers + " workers, Redis adapter" }));
  const io = new Server(httpServer, { serveClient: false });
  io.adapter(createAdapter(pub, sub));
  setupWorker(io);

  io.on("connection", (socket) => {
    // join(room, [opts], ack): opts (roomlog's since, presence) mean nothing here.
    socket.on("join", (room, ...rest) => {
      const ack = takeAck(rest);
      if (!validRoom(room)) return ack({ ok: false, code: "invalid_room", message: "room must be 1 to 200 bytes of text" });
      socket.join(room);
      ack({ ok: true });
    });
    // chat(room, data, [opts], ack): the filter, the broadcast to the room on every worker, then the bot.
    socket.on("chat", (room, data, ...rest) => {
      const ack = takeAck(rest);
      if (!validRoom(room)) return ack({ ok: false, code: "invalid_room", message: "room must be 1 to 200 bytes of text" });
      const bad = invalidChat(data);
      if (bad) return ack({ ok: false, code: "bad_request", message: bad });
      const refused = refusal(data.text);
      if (refused) return ack({ ok: false, code: "refused", message: refused });
      io.to(room).emit("chat", { id: String(data.id ?? ""), user: data.user, text: data.text }, { room, from: socket.id });
      ack({ ok: true });
      const reply = answer(data.text, data.user);
      if (reply) io.to(room).emit("chat", { user: botName, text: reply }, { room, from: botName });
    });
  });
  process.send({ type: "chat:ready" });
}

if (cluster.isPrimary) {
  const httpServer = http.createServer();
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" }); // sticky sessions
  cluster.setupPrimary({ serialization: "advanced" });
  let ready = 0;
  cluster.on("message", (_w, msg) => {
    if (msg?.type === "chat:ready" && ++ready === workers) {
      httpServer.listen(port, host, () => console.log(`original: http://${host}:${httpServer.address().port}/ (${workers} workers)`));
    }
  });
  cluster.on("exit", (w, code, signal) => {
    if (!stopping) console.error(`worker ${w.process.pid} died (${code ?? signal})`);
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.kill();
    httpServer.close();
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  worker().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
