// Issue 13: the operator console (/admin/, relay/console) in headless Chromium, against real relays on both logs.
// Two relays with JWT users and traffic in several rooms; the console on relay A lists the fleet and the rooms and
// shows a room's members and messages; its timeline slider's state equals `roomlog state --at` and its diff
// `roomlog state --diff` (the built binary, run here); relay B is SIGKILLed and the open fleet view shows its lease
// expiring and its members leaving without a reload; requests without a token, with a wrong one or with bad
// parameters get 401 or 400, never a 500, and the relay keeps serving; a relay C with --follow interest shows in its
// partitions table the ones it keeps, a partition it follows once a client joins a room there, and drops after the
// leave. Screenshots go to test-artifacts/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { partitionOf } from "../dist/index.js";
import { artifacts, backends, bin, hs256, launchChromium, startLog, WS } from "./helpers.mjs";

const run = promisify(execFile);
const wait = { timeout: 30000 };
const TOKEN = "console-test-token-" + process.pid;

let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

/** A raw protocol client: send(frame) resolves with the reply of the same id. */
async function client(ws, token) {
  const sock = new WS(ws + "?token=" + token);
  const waiting = new Map();
  let id = 0;
  sock.on("message", (d) => {
    const f = JSON.parse(d);
    if (f.id && waiting.has(f.id)) {
      waiting.get(f.id)(f);
      waiting.delete(f.id);
    }
  });
  await new Promise((resolve, reject) => {
    sock.once("open", resolve);
    sock.once("error", reject);
  });
  const send = (f) =>
    new Promise((resolve, reject) => {
      f.id = String(++id);
      waiting.set(f.id, (r) => (r.op === "error" ? reject(new Error(JSON.stringify(r))) : resolve(r)));
      sock.send(JSON.stringify(f));
    });
  return { send, close: () => sock.close() };
}

for (const backend of backends()) {
  describe("operator console in Chromium (" + backend.name + ")", () => {
    let log, a, b, page, jwt, topic, alice, flags;
    const get = (path, token, r = a) => fetch(r.http + path.replace(/^\//, ""), { headers: token ? { Authorization: "Bearer " + token } : {} });
    const shot = (name) => page.screenshot({ path: join(artifacts, "console-" + name + "-" + backend.name + ".png") });
    const cli = async (...args) => {
      const { stdout } = await run(bin, ["state", "--brokers", log.brokers, "--topic", topic, "--no-snapshot", "--quiet", ...args]);
      return JSON.parse(stdout);
    };

    before(async () => {
      log = await startLog(backend, "console");
      jwt = hs256(log.dir);
      const tokens = join(log.dir, "admin-tokens");
      writeFileSync(tokens, "# console tokens\nsome-other-token\n" + TOKEN + "\n");
      flags = ["--jwt-hs256-secret-file", jwt.file, "--admin-token-file", tokens, "--lease-timeout", "2s", "--snapshot-interval=-1s"];
      a = await log.relay(flags);
      b = await log.relay(flags);
      topic = (await (await get("/admin/api/fleet", TOKEN)).json()).relay.topic;
      // Traffic in several rooms, on both relays: alice on A, bob on B.
      alice = await client(a.ws, userToken("alice"));
      const bob = await client(b.ws, userToken("bob"));
      for (const room of ["chat:lobby", "chat:dev", "game:1"]) await alice.send({ op: "join", room });
      for (const room of ["chat:lobby", "game:1"]) await bob.send({ op: "join", room });
      for (let i = 1; i <= 4; i++) {
        await alice.send({ op: "publish", room: "chat:lobby", event: "chat", data: { text: "hello " + i + " from alice" } });
        await bob.send({ op: "publish", room: "chat:lobby", event: i % 2 ? "chat" : "typing", data: { text: "hi " + i + " from bob" } });
        await alice.send({ op: "incr", room: "chat:lobby", key: "messages", delta: 2 });
      }
      await alice.send({ op: "set", room: "chat:lobby", key: "topic", value: "release 1.4" });
      await bob.send({ op: "set", room: "game:1", key: "score", value: { alice: 3, bob: 5 } });
      await alice.send({ op: "publish", room: "chat:dev", event: "chat", data: { text: "build is green" } });

      page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
      page.errors = [];
      page.on("pageerror", (e) => page.errors.push(e));
    });
    after(async () => {
      await page?.close();
      await log?.close();
    });

    test("asks for the token, then lists the relays and the rooms; a room shows its members and messages", async () => {
      await page.goto(a.http + "admin/");
      await page.waitForSelector("#login:not([hidden])", wait);
      await page.fill("#token", "wrong-token");
      await page.click("#login button");
      await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("refused"), null, wait);
      await page.fill("#token", TOKEN);
      await page.click("#login button");
      await page.waitForFunction(() => document.querySelectorAll("#relays tbody tr[data-status=alive]").length === 2, null, wait);
      await page.waitForFunction(() => document.querySelector("#self-conns b").textContent === "1", null, wait);
      await page.waitForSelector("#view-fleet #self-ready [data-state=ready]", wait);
      await shot("fleet");

      await page.click("nav a[data-view=rooms]");
      await page.waitForFunction(() => document.querySelectorAll("#rooms tbody tr").length === 3, null, wait);
      await page.fill("#prefix", "chat:");
      await page.click("#search button");
      await page.waitForFunction(() => [...document.querySelectorAll("#rooms tbody tr")].map((r) => r.dataset.room).join() === "chat:dev,chat:lobby", null, wait);
      await page.click("#rooms tr[data-room='chat:lobby']");
      await page.waitForFunction(() => document.querySelectorAll("#room-live .members tbody tr").length === 2, null, wait);
      const members = await page.$$eval("#room-live .members tbody tr", (rs) => rs.map((r) => r.cells[1].textContent + "@" + r.dataset.relay));
      assert.deepEqual(members.sort(), ["alice@" + (await relayName(a)), "bob@" + (await relayName(b))].sort());
      const msgs = await page.$$eval("#room-live .messages tbody tr", (rs) => rs.map((r) => r.cells[5].textContent));
      assert.equal(msgs.length, 8);
      assert.ok(msgs.includes('{"text":"hello 4 from alice"}'), msgs.join("\n"));
      const kv = await page.$$eval("#room-live .kv tbody tr", (rs) => rs.map((r) => r.dataset.key + "=" + r.cells[1].textContent));
      assert.deepEqual(kv, ["messages=8", 'topic="release 1.4"']);
      await shot("room");
      assert.deepEqual(page.errors, []);
    });

    test("the slider's state equals `roomlog state --at`; the diff equals `roomlog state --diff`", async () => {
      await page.click("#to-timeline");
      await page.waitForFunction(() => window.roomlogConsole.records.length > 10 && document.querySelector("#state-json").dataset.at, null, wait);
      const recs = await page.evaluate(() => window.roomlogConsole.records.map((r) => r.pos + " " + r.type));
      // Filters: only bob's typing events.
      await page.fill("#f-event", "typing");
      await page.click("#filters button");
      await page.waitForFunction(() => window.roomlogConsole.records.length === 2, null, wait);
      await page.fill("#f-event", "");
      await page.click("#filters button");
      await page.waitForFunction((n) => window.roomlogConsole.records.length === n && document.querySelector("#state-json").dataset.at, recs.length, wait);
      // Move the slider with the keyboard to the 6th record (an earlier position).
      const k = 5;
      await page.focus("#slider");
      await page.keyboard.press("Home");
      for (let i = 0; i < k; i++) await page.keyboard.press("ArrowRight");
      const at = recs[k].split(" ")[0];
      await page.waitForFunction((at) => document.querySelector("#state-json").dataset.at === at, at, wait).catch(async (e) => {
        await shot("timeline-failed");
        throw new Error(e.message + "; the page shows " + (await page.evaluate(() => [document.querySelector("#slider").value, document.querySelector("#slider-at").textContent, document.querySelector("#error").textContent].join(" | "))));
      });
      const shown = JSON.parse(await page.textContent("#state-json"));
      assert.deepEqual(shown, await cli("--room", "chat:lobby", "--at", at));
      assert.ok(shown.members.length >= 1 && shown.history.length < 8, "an earlier state: " + JSON.stringify(shown));

      await page.click("#mark-a");
      await page.focus("#slider");
      await page.keyboard.press("End");
      const end = recs.at(-1).split(" ")[0];
      await page.waitForFunction((p) => document.querySelector("#state-json").dataset.at === p, end, wait);
      await page.click("#mark-b");
      await page.click("#diff");
      await page.waitForFunction((r) => document.querySelector("#diff-json").dataset.range === r, at + " " + end, wait);
      const diff = JSON.parse(await page.textContent("#diff-json"));
      assert.deepEqual(diff, await cli("--room", "chat:lobby", "--at", at, "--diff", end));
      assert.ok(diff.changes.length > 0);
      // Back to the earlier position for the screenshot: the state there, and the diff below.
      await page.focus("#slider");
      await page.keyboard.press("Home");
      for (let i = 0; i < k; i++) await page.keyboard.press("ArrowRight");
      await page.waitForFunction((at) => document.querySelector("#state-json").dataset.at === at, at, wait);

      await page.evaluate(() => scrollTo(0, 0));
      await shot("timeline");

      // The export of the slice is `roomlog export`'s format.
      const res = await get("/admin/api/export?room=chat:lobby&event=chat", TOKEN);
      assert.equal(res.status, 200);
      const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines[0].format, "roomlog-export");
      assert.deepEqual(lines.at(-1), { end: true, records: 6 });
      assert.ok(lines.slice(1, -1).every((r) => r.k === "chat:lobby"));

      // Live tail: a new message joins the timeline, and the state at its end, without a reload.
      await page.focus("#slider");
      await page.keyboard.press("End");
      await page.waitForFunction((p) => document.querySelector("#state-json").dataset.at === p, end, wait);
      await page.check("#tail");
      const pos = (await alice.send({ op: "publish", room: "chat:lobby", event: "chat", data: { text: "tailed" } })).pos;
      await page.waitForFunction((p) => document.querySelector("#state-json").dataset.at === p, pos, wait);
      assert.ok(JSON.parse(await page.textContent("#state-json")).history.some((m) => m.data.text === "tailed"));
      await page.uncheck("#tail");
      assert.deepEqual(page.errors, []);
    });

    test("SIGKILL a second relay: the fleet view shows its lease expiring and its members leaving, without a reload", async () => {
      await page.click("nav a[data-view=fleet]");
      const nameB = await relayName(b);
      const rowB = (status) => page.waitForFunction(([n, s]) => document.querySelector(`#relays tr[data-relay="${n}"]`)?.dataset.status === s, [nameB, status], wait);
      await rowB("alive");
      assert.ok(+(await page.getAttribute(`#relays tr[data-relay="${nameB}"]`, "data-members")) >= 2);
      await page.evaluate(() => (window.notReloaded = true));
      b.kill("SIGKILL");
      await rowB("expired");
      assert.equal(await page.getAttribute(`#relays tr[data-relay="${nameB}"]`, "data-members"), "0");
      assert.equal(await page.evaluate(() => window.notReloaded), true);
      await shot("fleet-expired");
      await page.click("nav a#nav-room");
      await page.waitForFunction(() => document.querySelectorAll("#room-live .members tbody tr").length === 1, null, wait);
      assert.equal(await page.evaluate(() => window.notReloaded), true);
    });

    test("no token, a wrong token, bad parameters: 401 or 400, never a 500; the relay keeps serving", async () => {
      const p = (await (await get("/admin/api/room?room=chat:lobby", TOKEN)).json()).room.at.split("-");
      const [part, off, epoch] = [p[0], +p[1], p[2]];
      const otherPart = (+part + 1) % 4;
      const cases = [
        ["/admin/api/fleet", "", 401],
        ["/admin/api/fleet", "wrong", 401],
        ["/admin/api/fleet", TOKEN + "x", 401],
        ["/admin/api/nope", TOKEN, 404],
        ["/admin/api/room?room=", TOKEN, 400],
        ["/admin/api/room?room=no-such-room", TOKEN, 400],
        ["/admin/api/room?room=%00bad", TOKEN, 400],
        ["/admin/api/rooms?limit=100000000", TOKEN, 400],
        ["/admin/api/rooms?limit=-1", TOKEN, 400],
        ["/admin/api/records?room=chat:lobby&limit=abc", TOKEN, 400],
        ["/admin/api/records?room=chat:lobby&from=nonsense", TOKEN, 400],
        ["/admin/api/records?room=chat:lobby&type=bogus", TOKEN, 400],
        [`/admin/api/state?room=chat:lobby&at=${part}-${off}-0000000000000001`, TOKEN, 400], // another epoch
        [`/admin/api/state?room=chat:lobby&at=${otherPart}-1-${epoch}`, TOKEN, 400], // another partition
        [`/admin/api/state?room=chat:lobby&at=${part}-${off + 1000000}-${epoch}`, TOKEN, 400], // past the end
        [`/admin/api/state?room=chat:lobby&at=${part}-${off}-${epoch}&diff=${part}-1-${epoch}`, TOKEN, 400], // diff before at
        [`/admin/api/export?room=chat:lobby&from=${part}-${off}-${epoch}&to=${part}-1-${epoch}`, TOKEN, 400],
        ["/admin/api/state?room=" + "x".repeat(2000), TOKEN, 400], // too long for a room name
      ];
      for (const [path, token, want] of cases) {
        const res = await get(path, token);
        assert.equal(res.status, want, path.slice(0, 120) + " with token " + JSON.stringify(token));
        const body = await res.json();
        assert.ok(body.error && body.message, JSON.stringify(body));
      }
      const post = await fetch(a.http + "admin/api/fleet", { method: "POST", headers: { Authorization: "Bearer " + TOKEN } });
      assert.equal(post.status, 405);
      assert.equal((await get("/readyz")).status, 200);
      const carol = await client(a.ws, userToken("carol"));
      assert.equal((await carol.send({ op: "join", room: "chat:lobby" })).op, "ack");
      carol.close();
      assert.equal((await get("/admin/api/fleet", TOKEN)).status, 200);
    });

    test("a relay that follows on demand: its partitions table shows what it keeps, and a partition followed for a join and dropped after the leave", async () => {
      // Relay C folds the control partition, the ones it keeps (rendezvous over the live relays: A and C) and the
      // ones its rooms need. It must leave a partition to A: a new C (another name) until it does.
      const nameA = await relayName(a);
      let c, self, p;
      for (let i = 0; p === undefined; i++) {
        assert.ok(i < 20, "twenty relays in a row kept every partition");
        c?.kill();
        c = await log.relay([...flags, "--follow", "interest", "--follow-idle", "1s"]);
        const name = await relayName(c);
        // Settled: C's keeper pass has run over A and C only (B and any earlier C have expired), and C folds the
        // partitions it keeps.
        for (const deadline = Date.now() + 30000; ; await new Promise((r) => setTimeout(r, 200))) {
          self = (await (await get("/admin/api/fleet", TOKEN, c)).json()).relay;
          const ps = self.partitions;
          if (ps.every((x) => (x.keeper === nameA || x.keeper === name) && (x.keeper === name) === (x.follow === "kept"))) break;
          assert.ok(Date.now() < deadline, "C's partitions never settled: " + JSON.stringify(ps));
        }
        p = self.partitions.find((x) => x.follow === "not followed")?.partition;
      }
      const room = Array.from({ length: 200 }, (_, i) => "game:follow-" + i).find((r) => partitionOf(r, 4) === p);
      const view = await browser.newPage({ viewport: { width: 1200, height: 760 } });
      view.errors = [];
      view.on("pageerror", (e) => view.errors.push(e));
      try {
        await view.goto(c.http + "admin/");
        await view.waitForSelector("#login:not([hidden])", wait);
        await view.fill("#token", TOKEN);
        await view.click("#login button");
        const row = `#partitions tr[data-partition="${p}"]`;
        const followOf = (want) => view.waitForFunction(([r, w]) => document.querySelector(r)?.dataset.follow === w, [row, want], wait);
        await followOf("not followed");
        assert.equal(await view.textContent(row + " td:nth-child(5)"), "–"); // no lag where it does not fold
        const kept = await view.$$eval("#partitions tr[data-follow=kept]", (rs) => rs.map((r) => +r.dataset.partition));
        assert.deepEqual(kept, self.partitions.filter((x) => x.follow === "kept").map((x) => x.partition));
        assert.equal(await view.textContent(row + " td:nth-child(3)"), nameA); // A keeps it

        // A client of C joins a room there: C follows the partition; the leave, and --follow-idle later, C drops it.
        const carol = await client(c.ws, userToken("carol"));
        await carol.send({ op: "join", room });
        await followOf("followed");
        await view.waitForFunction((r) => /^\d+$/.test(document.querySelector(r + " td:nth-child(5)").textContent), row, wait);
        await view.screenshot({ path: join(artifacts, "console-fleet-follow-" + backend.name + ".png") });
        await carol.send({ op: "leave", room });
        await followOf("not followed");
        carol.close();
        assert.deepEqual(view.errors, []);
      } finally {
        await view.close();
        c.kill();
      }
    });

    function userToken(sub) {
      return jwt.sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600, rooms: ["chat:*", "game:*"] });
    }

    async function relayName(r) {
      const m = /--relay-name (\S+)/.exec(r.child.spawnargs.join(" "));
      return m[1];
    }
  });
}
