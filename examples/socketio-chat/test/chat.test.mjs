// The migration example end to end, in headless Chromium (Debian's, driven by playwright-core through the SDK's
// test helpers): `run.sh roomlog` (a relay on its embedded broker, the kafkajs backend, the page's web server) and
// `run.sh original` (redis-server, the Socket.IO cluster with sticky sessions and the Redis adapter), each started
// as one command, exactly as a reader would. Two pages in a room chat, the bot answers /roll, and a banned word is
// refused (original) or struck out for everyone (roomlog). Screenshots go to test-artifacts/ (gitignored).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { launchChromium } from "../../../sdk/js/test/helpers.mjs";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const artifacts = join(here, "test-artifacts");
mkdirSync(artifacts, { recursive: true });
const wait = { timeout: 30000 };
const haveRedis = spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
if (!haveRedis && process.env.ROOMLOG_REQUIRE_KAFKA === "1") {
  throw new Error("redis-server is missing (testenv/setup.sh installs it): the original cannot run");
}

/** A free TCP port on 127.0.0.1 (closed again at once; run.sh binds it a moment later). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

const runs = new Set();
process.on("exit", () => {
  for (const r of runs) {
    try {
      process.kill(-r.pid, "SIGKILL"); // run.sh and everything it started: its own process group
    } catch {}
  }
});

/** Starts `run.sh mode` on free ports; resolves once it prints its ready line. */
async function startRun(mode) {
  const dir = mkdtempSync(join(tmpdir(), "socketio-chat-"));
  const env = {
    ...process.env,
    RUN_DIR: dir,
    WEB_PORT: String(await freePort()),
    RELAY_PORT: String(await freePort()),
    BROKER_PORT: String(await freePort()),
    REDIS_PORT: String(await freePort()),
  };
  const child = spawn(join(here, "run.sh"), [mode], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  runs.add(child);
  const exited = new Promise((r) => child.on("exit", (code, sig) => r(code ?? sig)));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("run.sh " + mode + " not ready in 180 s:\n" + out)), 180000);
    const check = () => /^ready: /m.test(out) && (clearTimeout(timer), resolve());
    child.stdout.on("data", check);
    exited.then((code) => reject(new Error("run.sh " + mode + " exited (" + code + "):\n" + out)));
  });
  return {
    url: "http://127.0.0.1:" + env.WEB_PORT + "/",
    dir,
    async stop() {
      // run.sh ends by itself only when one of its processes exits: that is a failure of the run, with their logs.
      const early = child.exitCode !== null || child.signalCode !== null;
      if (!early) process.kill(child.pid, "SIGTERM"); // run.sh stops what it started, in order
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 20000))]);
      if (code === "timeout") process.kill(-child.pid, "SIGKILL");
      runs.delete(child);
      const logs = early ? processLogs(dir) : "";
      rmSync(dir, { recursive: true, force: true });
      if (early) throw new Error("run.sh " + mode + " exited during the test (" + code + "):\n" + out + logs);
      return out;
    },
  };
}

/** The last lines of each process log run.sh kept in dir. */
function processLogs(dir) {
  const logs = join(dir, "logs");
  if (!existsSync(logs)) return "";
  return readdirSync(logs)
    .map((f) => "\n--- " + f + " ---\n" + readFileSync(join(logs, f), "utf8").split("\n").slice(-20).join("\n"))
    .join("");
}

const lines = (page) =>
  page.$$eval("#messages li", (lis) => lis.map((li) => li.querySelector(".user").textContent + ": " + li.querySelector(".text").textContent));
const shows = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#messages .text")].some((e) => e.textContent === t), text, wait);
const say = async (page, text) => {
  await page.fill("#text", text);
  await page.click("#send-form button");
};

for (const mode of ["roomlog", "original"]) {
  describe("socketio-chat example: " + mode + " (run.sh " + mode + ")", { skip: mode === "original" && !haveRedis && "redis-server is not installed" }, () => {
    let run, browser;
    before(async () => {
      run = await startRun(mode);
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
      await run?.stop();
    });

    test("two pages chat, the bot answers /roll, the banned word is " + (mode === "roomlog" ? "struck out" : "refused"), async () => {
      const room = "lobby-" + Date.now();
      const open = async (name) => {
        const p = await browser.newPage({ viewport: { width: 800, height: 560 } });
        p.errors = [];
        p.on("pageerror", (e) => p.errors.push(e));
        await p.goto(run.url + "?room=" + room + "&name=" + name);
        await p.waitForSelector('#status[data-state="connected"]', wait);
        return p;
      };
      const alice = await open("alice");
      const bob = await open("bob");

      await say(alice, "hello from alice");
      await shows(bob, "hello from alice");
      await say(bob, "/roll 20");
      for (const p of [alice, bob]) {
        await p.waitForFunction(() => [...document.querySelectorAll("#messages li.bot .text")].some((e) => /^bob rolled \d+ \(1-20\)$/.test(e.textContent)), null, wait);
      }

      await say(alice, "who wants durian?");
      if (mode === "roomlog") {
        // In the log already: delivered, then struck out by the backend's moderation event on both pages.
        for (const p of [alice, bob]) await shows(p, 'removed by the moderator: the word "durian" is not allowed here');
        assert.equal(await alice.isHidden("#error"), true, "the relay acknowledged it");
      } else {
        // Refused by the server before anyone saw it.
        await alice.waitForSelector("#error:not([hidden])", wait);
        assert.equal(await alice.textContent("#error"), 'not sent: the word "durian" is not allowed here');
      }
      await say(bob, "bye");
      for (const p of [alice, bob]) await shows(p, "bye");

      const got = await lines(alice);
      assert.deepEqual(await lines(bob), got, "both pages show the same messages in the same order");
      const bot = got.find((l) => l.startsWith("bot: "));
      const expected = ["alice: hello from alice", "bob: /roll 20", bot, "bob: bye"];
      if (mode === "roomlog") expected.splice(3, 0, 'alice: removed by the moderator: the word "durian" is not allowed here');
      assert.deepEqual(got, expected);
      if (mode === "roomlog") {
        const pos = (p) => p.$$eval("#messages li", (lis) => lis.map((li) => li.dataset.pos));
        const ps = await pos(alice);
        assert.deepEqual(await pos(bob), ps, "the same log positions on both pages");
        assert.ok(ps.every((x) => /^\d+-\d+-[0-9a-f]{16}$/.test(x)), "every message has a log position: " + ps);
      }
      await alice.screenshot({ path: join(artifacts, mode + "-alice.png"), fullPage: true });
      await bob.screenshot({ path: join(artifacts, mode + "-bob.png"), fullPage: true });
      assert.deepEqual([...alice.errors, ...bob.errors], []);
    });
  });
}
