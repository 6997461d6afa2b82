// Socket.IO 4.8 peer for roomlog's benchmarks: one node of a cluster that
// shares rooms through Redis (@socket.io/redis-adapter).
//   "join"    (room, ack)        -> socket.join(room); ack({ok:true})
//   "publish" (room, data, ack)  -> io.to(room).emit("message", room, data) on every node; ack({ok:true})
// Env: PORT (default 3000), HOST (127.0.0.1), REDIS_URL (redis://127.0.0.1:6379).
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

async function main() {
  const port = Number(process.env.PORT || 3000);
  const host = process.env.HOST || "127.0.0.1";
  const pub = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379" });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error("redis pub:", e.message));
  sub.on("error", (e) => console.error("redis sub:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const io = new Server({
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    serveClient: false,
    perMessageDeflate: false,
    cors: { origin: "*" },
  });
  io.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(String(room));
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("publish", (room, data, ack) => {
      io.to(String(room)).emit("message", room, data);
      if (typeof ack === "function") ack({ ok: true });
    });
  });
  const srv = http.createServer();
  io.attach(srv);
  srv.listen(port, host);
  console.log(`socket.io node on ${host}:${port}`);
  const stop = () => { io.close(); pub.quit().catch(() => {}); sub.quit().catch(() => {}); setTimeout(() => process.exit(0), 500); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => { console.error(e); process.exit(1); });
