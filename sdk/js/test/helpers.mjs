// Test helpers: real relays (bin/roomlog, built by `npm test`) over real sockets, on the embedded broker (kfake,
// a `roomlog broker` process) and on a real Kafka when ROOMLOG_TEST_BROKERS is set (testenv/test.sh starts one).
// Every child process is killed when the test file ends, whatever happens.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import WS from "ws";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "../../..");
export const sdkRoot = join(here, "..");
export const bin = process.env.ROOMLOG_BIN || join(repoRoot, "bin/roomlog");
/** Screenshots and relay logs, kept after the run (gitignored). */
export const artifacts = join(sdkRoot, "test-artifacts");
mkdirSync(artifacts, { recursive: true });

export { WS };

const children = new Set();
process.on("exit", () => {
  for (const c of children) {
    try {
      process.kill(c.pid, "SIGKILL");
    } catch {}
  }
});

/** The log backends to run against: kfake always; real Kafka when ROOMLOG_TEST_BROKERS is set (and required
 * when ROOMLOG_REQUIRE_KAFKA=1: then a missing broker fails, never skips). */
export function backends() {
  const list = [{ name: "kfake" }];
  const real = process.env.ROOMLOG_TEST_BROKERS;
  if (real) list.push({ name: "kafka", brokers: real });
  else if (process.env.ROOMLOG_REQUIRE_KAFKA === "1") throw new Error("ROOMLOG_REQUIRE_KAFKA=1 but ROOMLOG_TEST_BROKERS is not set");
  return list;
}

/** Waits until cond() is true, polling; fails after ms with what. */
export async function waitFor(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("timed out after " + ms + " ms waiting for " + what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with the next `name` event of emitter (a Client or Room) that passes pred; fails after ms. */
export function nextEvent(emitter, name, pred = () => true, ms = 30000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error("no " + name + " event within " + ms + " ms"));
    }, ms);
    const off = emitter.on(name, (ev) => {
      if (!pred(ev)) return;
      clearTimeout(timer);
      off();
      resolve(ev);
    });
  });
}

function start(args, logName, ready) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const log = createWriteStream(join(artifacts, logName + ".log"));
  child.stderr.pipe(log);
  const exited = new Promise((r) => child.on("exit", (code, sig) => {
    children.delete(child);
    r({ code, sig });
  }));
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(logName + ": not ready within 60 s (see " + logName + ".log)")), 60000);
    const onData = (d) => {
      buf += d;
      const v = ready(buf);
      if (v) {
        clearTimeout(timer);
        resolve({ child, exited, value: v });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    exited.then(({ code, sig }) => reject(new Error(logName + " exited (" + (code ?? sig) + ") before it was ready; see " + logName + ".log")));
  });
}

let seq = 0;

/** A log for one test: a fresh topic on the backend (kfake: a broker process of its own). */
export async function startLog(backend, name) {
  const id = name + "-" + process.pid + "-" + ++seq;
  const dir = mkdtempSync(join(tmpdir(), "roomlog-sdk-"));
  let brokers = backend.brokers;
  let broker;
  if (!brokers) {
    broker = await start(["broker", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data")], id + "-broker", (out) => {
      const m = /^(127\.0\.0\.1:\d+)\s*$/m.exec(out);
      return m && m[1];
    });
    brokers = broker.value;
  }
  const relays = [];
  const log = {
    brokers,
    dir,
    relays,
    /** Starts a relay on this log: { ws, http, child, stop(), kill(sig) }. */
    async relay(extra = []) {
      const n = relays.length + 1;
      const args = ["relay", "--brokers", brokers, "--topic", "sdk-" + id, "--snapshot-topic", "sdk-" + id + ".snap",
        "--listen", "127.0.0.1:0", "--log-format", "json", "--relay-name", id + "-r" + n + "-" + randomBytes(3).toString("hex"),
        "--rate", "-1", "--partitions", "4", ...extra];
      if (!extra.some((a) => a.startsWith("--jwt"))) args.push("--anonymous");
      const r = await start(args, id + "-relay" + n, (out) => {
        const m = /"msg":"serving".*?"ws":"(ws:\/\/[^"]+)"/.exec(out);
        return m && m[1];
      });
      const relay = {
        ws: r.value,
        http: r.value.replace(/^ws/, "http").replace(/\/ws$/, "/"),
        child: r.child,
        exited: r.exited,
        kill(sig = "SIGKILL") {
          r.child.kill(sig);
        },
      };
      relays.push(relay);
      return relay;
    },
    /** Kills every process of this log and removes its folder. */
    async close() {
      const all = [...relays.map((r) => r), ...(broker ? [{ child: broker.child, exited: broker.exited }] : [])];
      for (const p of all) {
        try {
          p.child.kill("SIGCONT");
          p.child.kill("SIGKILL");
        } catch {}
      }
      await Promise.all(all.map((p) => p.exited));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return log;
}

/** An HS256 secret file for --jwt-hs256-secret-file, and a signer of tokens for it. */
export function hs256(dir) {
  const secret = randomBytes(32).toString("hex");
  const file = join(dir, "jwt-secret");
  writeFileSync(file, secret);
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return {
    file,
    sign(claims) {
      const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
      return body + "." + createHmac("sha256", secret).update(body).digest("base64url");
    },
  };
}

/** Headless Chromium: Debian's (or $CHROMIUM), driven by playwright-core. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}
