// Issue 12, tests 5 and 6, in headless Chromium (Debian's, driven by playwright-core) on the demo page the relays
// serve: two pages on two relays chat; one relay is killed and its page reconnects to the other, recovers and
// shows no gap. Then bad input from a page (an oversized message, a forbidden room) shows the typed error and the
// client stays usable. Screenshots go to test-artifacts/ (gitignored); look at them.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { artifacts, backends, hs256, launchChromium, startLog } from "./helpers.mjs";

const wait = { timeout: 30000 };

let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

async function open(url) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  page.errors = errors;
  await page.goto(url);
  return page;
}

const texts = (page) => page.$$eval("#messages li", (lis) => lis.map((li) => li.dataset.pos + " " + li.querySelector(".text").textContent));
const connectedTo = (page, ws) =>
  page.waitForFunction((ws) => document.querySelector("#status").dataset.state === "connected" && window.demo.client.url === ws, ws, wait);
const say = async (page, text) => {
  await page.fill("#text", text);
  await page.click("#send-form button");
};
const shows = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#messages .text")].some((e) => e.textContent === t), text, wait);

for (const backend of backends()) {
  describe("demo page in Chromium (" + backend.name + ")", () => {
    let log;
    before(async () => {
      log = await startLog(backend, "browser");
    });
    after(() => log?.close());

    test("two pages on two relays chat; a killed relay's page reconnects, recovers, shows no gap", async () => {
      const origins = ["--allowed-origins", "http://127.0.0.1:*"];
      const a = await log.relay(origins);
      const b = await log.relay(origins);
      const room = "demo-" + Date.now();
      const p1 = await open(a.http + "?room=" + room + "&relays=" + a.ws + "," + b.ws);
      const p2 = await open(b.http + "?room=" + room);
      await connectedTo(p1, a.ws);
      await connectedTo(p2, b.ws);
      await p1.waitForFunction(() => document.querySelectorAll("#members li").length === 2, null, wait);

      await say(p1, "hello from the page on relay A");
      await say(p2, "hello from the page on relay B");
      await shows(p1, "hello from the page on relay B");
      await shows(p2, "hello from the page on relay A");
      await p1.click("#incr");
      await p2.click("#incr");
      await p1.waitForFunction(() => document.querySelector("#counter").textContent === "2", null, wait);

      a.kill("SIGKILL");
      for (let i = 1; i <= 3; i++) await say(p2, "while relay A was down " + i);
      await connectedTo(p1, b.ws);
      await p1.waitForFunction(() => document.querySelector("#recovery").dataset.state === "recovered", null, wait);
      await say(p1, "back, through relay B");
      await shows(p2, "back, through relay B");
      await shows(p1, "back, through relay B");
      await p1.click("#incr");
      await p2.waitForFunction(() => document.querySelector("#counter").textContent === "3", null, wait);
      await p1.waitForFunction(() => document.querySelector("#counter").textContent === "3", null, wait);

      // "Here now" on the reconnected page: "you" is its current connection only; its connection on the killed
      // relay, while still a member (until A's lease expires), is marked as the earlier one.
      const here = await p1.evaluate(() => [...document.querySelectorAll("#members li")].map((li) => [li.className, li.textContent]));
      const conn = await p1.evaluate(() => window.demo.client.conn);
      const you = here.filter(([, t]) => t.startsWith("you · "));
      assert.ok(you.length === 1 && you[0][1].includes(conn), JSON.stringify(here) + " current " + conn);
      assert.ok(here.every(([cls, t]) => (cls === "earlier") === t.startsWith("you, before reconnecting")), JSON.stringify(here));
      const t1 = await texts(p1);
      const t2 = await texts(p2);
      assert.deepEqual(t1, t2, "both pages show the same messages, in the same order");
      assert.equal(t1.length, 6);
      assert.equal(new Set(t1).size, t1.length, "no duplicate");
      await p1.screenshot({ path: join(artifacts, "demo-page1-relay-a-killed-" + backend.name + ".png"), fullPage: true });
      await p2.screenshot({ path: join(artifacts, "demo-page2-relay-b-" + backend.name + ".png"), fullPage: true });
      assert.deepEqual([...p1.errors, ...p2.errors], []);
    });

    test("bad input from the page shows the typed error; the client stays usable", async () => {
      const jwt = hs256(log.dir);
      const c = await log.relay(["--jwt-hs256-secret-file", jwt.file]);
      const token = jwt.sign({ sub: "carol", exp: Math.floor(Date.now() / 1000) + 3600, rooms: ["ok-*"] });
      const p = await open(c.http + "?room=ok-" + Date.now());
      await p.waitForSelector("#token-form:not([hidden])", wait); // with JWT auth the page asks for a token
      await p.fill("#token", token);
      await p.click("#token-form button");
      await connectedTo(p, c.ws);
      const conn = await p.evaluate(() => window.demo.client.conn);

      await say(p, "x".repeat(70000));
      await p.waitForSelector('#error[data-code="message_too_big"]:not([hidden])', wait);
      await p.screenshot({ path: join(artifacts, "demo-error-too-big-" + backend.name + ".png"), fullPage: true });

      await p.fill("#room", "secret");
      await p.click("#room-form button");
      await p.waitForSelector('#error[data-code="forbidden"]:not([hidden])', wait);
      await p.screenshot({ path: join(artifacts, "demo-error-forbidden-" + backend.name + ".png"), fullPage: true });

      await say(p, "still here");
      await shows(p, "still here");
      assert.equal(await p.evaluate(() => window.demo.client.conn), conn, "same connection throughout");
      assert.match(await p.textContent("#me"), /carol/);
      assert.deepEqual(p.errors, []);
    });
  });
}
