// Serves the chat page for the roomlog version: the same public/ files as the original, with a config.js that
// points io() at the relay (RELAY_URL). The relay serves /socket.io/ itself; this server only hands out files,
// and any static host or CDN can replace it.
//
// Env: PORT (8090), HOST (127.0.0.1), RELAY_URL (http://127.0.0.1:8080).
import http from "node:http";
import { pageHandler } from "../lib/static.mjs";

const port = Number(process.env.PORT || 8090);
const host = process.env.HOST || "127.0.0.1";
const relay = process.env.RELAY_URL || "http://127.0.0.1:8080";

const server = http.createServer(pageHandler({ url: relay, server: "roomlog relay " + relay }));
server.listen(port, host, () => console.log(`web: http://${host}:${server.address().port}/ (relay ${relay})`));
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
