// Serves the chat page (public/) and the socket.io-client browser bundle (the pinned npm package) over HTTP, with a
// /config.js that tells the page where its Socket.IO server is: the only thing that differs between the versions.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

const files = {
  "/": ["public/index.html", "text/html; charset=utf-8"],
  "/index.html": ["public/index.html", "text/html; charset=utf-8"],
  "/chat.js": ["public/chat.js", "text/javascript; charset=utf-8"],
  "/chat.css": ["public/chat.css", "text/css; charset=utf-8"],
  "/vendor/socket.io.min.js": ["node_modules/socket.io-client/dist/socket.io.min.js", "text/javascript; charset=utf-8"],
};

/**
 * Returns a request handler for the page. config is what the page reads as window.CHAT_CONFIG:
 * {url, server, options} (url: where io() connects, "" for the page's own origin; options: io()'s options).
 */
export function pageHandler(config) {
  const body = {};
  for (const [path, [file]] of Object.entries(files)) body[path] = readFileSync(join(root, file));
  body["/config.js"] = Buffer.from("window.CHAT_CONFIG = " + JSON.stringify(config) + ";\n");
  return (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const type = path === "/config.js" ? "text/javascript; charset=utf-8" : files[path]?.[1];
    if (!type || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(req.method === "GET" || req.method === "HEAD" ? 404 : 405, { "content-type": "text/plain" });
      res.end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": type, "cache-control": "no-cache", "x-content-type-options": "nosniff" });
    res.end(req.method === "HEAD" ? undefined : body[path]);
  };
}
