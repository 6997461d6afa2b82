// Issue 12, test 4: the tarball from `npm pack` installs in an empty folder; `import` and `require` both work in
// Node; the types check (tsc --noEmit on a small consumer); the core stays within its size budget; and the browser
// bundle the relay embeds (relay/demo/static/roomlog.min.js) is exactly what the sources build.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";
import { demoBundle, options } from "../build.mjs";
import { sdkRoot } from "./helpers.mjs";

const budget = 8 * 1024; // bytes, min+gzip, the core client (issue 12)
const dir = mkdtempSync(join(tmpdir(), "roomlog-pack-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new Error(cmd + " " + args.join(" ") + ":\n" + e.stdout + e.stderr);
  }
}

test("npm pack installs in an empty folder; import, require and the types work", () => {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", dir], sdkRoot))[0];
  const files = packed.files.map((f) => f.path).sort();
  for (const f of ["dist/index.js", "dist/index.cjs", "dist/index.d.ts", "dist/index.d.cts", "dist/roomlog.min.js", "README.md", "package.json"]) {
    assert.ok(files.includes(f), f + " in the tarball: " + files.join(" "));
  }
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/")), "no sources or tests in the tarball");

  const app = join(dir, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", join(dir, packed.filename)], app);

  const cjs = run(process.execPath, ["-e", "const r = require('roomlog'); console.log(typeof r.Client, typeof r.RoomlogError)"], app);
  assert.equal(cjs.trim(), "function function");
  const esm = run(process.execPath, ["--input-type=module", "-e", "import { Client, RoomlogError } from 'roomlog'; console.log(typeof Client, typeof RoomlogError)"], app);
  assert.equal(esm.trim(), "function function");

  const consumer = `
import { Client, RoomlogError, type Message, type PublishAck } from "roomlog";
declare const WebSocketImpl: import("roomlog").WebSocketConstructor;
const client = new Client({ url: ["ws://a/ws", "ws://b/ws"], WebSocket: WebSocketImpl, getToken: async () => "t" });
const room = client.room("lobby", { presence: true });
room.on("message", (m: Message) => m.pos.length);
room.on("gap", (g) => g.reason === "not_recovered");
client.on("disconnected", (d) => d.error instanceof RoomlogError && d.error.code === "token_expired");
const ack: Promise<PublishAck> = room.publish({ text: "hi" }, { event: "chat" });
async function f() { const e = await room.incr("n"); const n: number = e.version; return n; }
void ack; void f;
`;
  for (const [file, mod] of [["consumer.mts", "nodenext"], ["consumer.cts", "nodenext"], ["bundler.ts", "preserve"]]) {
    writeFileSync(join(app, file), consumer);
    const tsc = join(sdkRoot, "node_modules/typescript/bin/tsc");
    const res = mod === "preserve" ? ["--module", "preserve", "--moduleResolution", "bundler"] : ["--module", mod];
    run(process.execPath, [tsc, "--noEmit", "--strict", "--lib", "es2020", ...res, join(app, file)], app);
  }
});

test("the core client is at most 8 KB min+gzip", async () => {
  const out = await esbuild.build({ ...options("esm"), minify: true, write: false });
  const size = gzipSync(out.outputFiles[0].contents, { level: 9 }).length;
  console.log("# core (ESM, minified) " + out.outputFiles[0].contents.length + " B, gzip " + size + " B; budget " + budget + " B");
  assert.ok(size <= budget, size + " B min+gzip, over the " + budget + " B budget");
});

test("the committed browser bundle (relay/demo/static) is what the sources build", async () => {
  const out = await esbuild.build({ ...options("iife"), write: false });
  const built = Buffer.from(out.outputFiles[0].contents);
  const committed = readFileSync(demoBundle);
  console.log("# browser bundle (IIFE, minified) " + built.length + " B, gzip " + gzipSync(built, { level: 9 }).length + " B");
  assert.ok(built.equals(committed), "relay/demo/static/roomlog.min.js is stale: run `npm run build` in sdk/js and commit it");
});
