// A socket.io-client driven line by line by a Go test
// (relay/socketio_test.go): one JSON command per line on stdin, one JSON
// report per line on stdout.
//
//   node driver.mjs <url> <options as JSON>
//
// Reports: {"type":"connect","id","transport"}, {"type":"connect_error",
// "message","data"}, {"type":"disconnect","reason"}, {"type":"upgrade",
// "transport"}, {"type":"event","name","args"}, {"type":"ack","id","args"}.
// Commands: {"op":"emit","event","args","id"} (with an ack when id is set),
// {"op":"emitBinary","event","args","id"} (a Buffer appended to args),
// {"op":"raw","data"} (an Engine.IO message as is), {"op":"close"}.
//
// On every reconnection the client rejoins the rooms it joined with
// `since` = the last position it received in each (rejoin reports
// {"type":"rejoined","room","ack"}): what an app does without connection
// state recovery. With the driver option {"rejoin": "unrecovered"} it does
// so only when the connection state was not recovered (socket.recovered is
// false), as an app using recovery does; the connect report carries
// `recovered`. Commands also: {"op":"drop"} closes the Engine.IO
// transport (the client reconnects by itself, as after a network cut);
// {"op":"disconnect"} and {"op":"connect"} are socket.disconnect() and
// socket.connect().
import { io } from "socket.io-client";
import readline from "node:readline";

const [url, optsJSON] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const { rejoin = "always", ...opts } = JSON.parse(optsJSON || "{}") ?? {};
const socket = io(url, { reconnectionDelay: 50, reconnectionDelayMax: 200, ...opts });
const rooms = new Map(); // room → last pos seen
let connects = 0;

socket.on("connect", () => {
  out({ type: "connect", id: socket.id, transport: socket.io.engine.transport.name, recovered: socket.recovered });
  if (connects++ > 0 && (rejoin === "always" || !socket.recovered)) {
    for (const [room, since] of rooms) {
      socket.emit("join", room, since ? { since } : {}, (ack) => out({ type: "rejoined", room, ack }));
    }
  }
});
// The manager opens the engine before the socket connects; the upgrade may
// end before "connect".
socket.io.on("open", () => socket.io.engine.once("upgrade", (t) => out({ type: "upgrade", transport: t.name })));
socket.on("connect_error", (err) => out({ type: "connect_error", message: err.message, data: err.data ?? null }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.onAny((name, ...args) => {
  const meta = args[1];
  if (meta && typeof meta === "object" && typeof meta.pos === "string" && rooms.has(meta.room)) {
    rooms.set(meta.room, meta.pos);
  }
  out({ type: "event", name, args });
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  switch (cmd.op) {
    case "emit":
    case "emitBinary": {
      const args = [...cmd.args];
      if (cmd.op === "emitBinary") args.push(Buffer.from([1, 2, 3]));
      if (cmd.event === "join" && !rooms.has(args[0])) rooms.set(args[0], "");
      if (cmd.id !== undefined) {
        socket.emit(cmd.event, ...args, (...ack) => {
          if (cmd.event === "join" && ack[0] && ack[0].ok && !rooms.get(args[0])) rooms.set(args[0], ack[0].pos);
          out({ type: "ack", id: cmd.id, args: ack });
        });
      } else {
        socket.emit(cmd.event, ...args);
      }
      break;
    }
    case "raw":
      socket.io.engine.write(cmd.data);
      break;
    case "drop":
      socket.io.engine.close();
      break;
    case "disconnect":
      socket.disconnect();
      break;
    case "connect":
      socket.connect();
      break;
    case "close":
      socket.disconnect();
      process.exit(0);
  }
});
