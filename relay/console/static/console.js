// The roomlog operator console: reads the relay's JSON API under /admin/api/ (docs/operations.md) and draws the
// fleet, the rooms, a room, and a room's timeline. Read-only: it only ever sends GET requests. The admin token
// stays in this tab's sessionStorage and goes out as Authorization: Bearer.
"use strict";
(() => {
  const $ = (s) => document.querySelector(s);
  const mode = document.querySelector('meta[name="roomlog-admin"]').content;
  const TOKEN = "roomlog-admin-token";
  const state = { view: "", room: "", timer: 0, records: [], a: null, b: null, tailTimer: 0, stateSeq: 0 };
  window.roomlogConsole = state; // for the tests and curious operators

  /** el("td", {class: "mono"}, "text", child...) */
  function el(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : String(k ?? ""));
    return e;
  }
  const row = (cells, attrs) => el("tr", attrs, ...cells.map((c) => (c instanceof Node && (c.tagName === "TD" || c.tagName === "TH") ? c : el("td", {}, c))));
  const mono = (s) => el("td", { class: "mono" }, s);
  const fill = (tbody, rows) => tbody.replaceChildren(...rows);
  const time = (t) => (t ? new Date(t).toISOString().replace("T", " ").replace("Z", "") : "");
  const ms = (n) => (n < 1000 ? n + " ms" : (n / 1000).toFixed(1) + " s");
  const json = (v) => (v === undefined ? "" : JSON.stringify(v));

  class HTTPError extends Error {}
  async function api(path, params = {}) {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
    const headers = {};
    const token = sessionStorage.getItem(TOKEN);
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch("/admin/api/" + path + (q.size ? "?" + q : ""), { headers, cache: "no-store" });
    if (res.status === 401) {
      showLogin(token ? "That token was refused." : "");
      throw new HTTPError("unauthorized");
    }
    const body = path === "export" && res.ok ? await res.blob() : await res.json();
    if (!res.ok) throw new HTTPError(body.error + ": " + body.message);
    hideError();
    return body;
  }
  function showError(e) {
    if (e.message === "unauthorized") return;
    $("#error").textContent = e.message;
    $("#error").hidden = false;
    $("#live").dataset.state = "error";
    $("#live").textContent = "error";
  }
  function hideError() {
    $("#error").hidden = true;
  }
  function showLogin(msg) {
    stopTimers();
    $("#login").hidden = false;
    $("main").hidden = true;
    $("#login-error").textContent = msg;
    $("#token").focus();
  }
  $("#login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, $("#token").value.trim());
    $("#token").value = "";
    $("#login").hidden = true;
    $("main").hidden = false;
    route();
  });

  function stopTimers() {
    clearTimeout(state.timer);
    clearTimeout(state.tailTimer);
    state.timer = state.tailTimer = 0;
  }
  /** Runs fn now and every ms while the view stays the same. */
  function every(ms, fn) {
    const view = state.view;
    const tick = async () => {
      try {
        await fn();
        $("#live").dataset.state = "live";
        $("#live").textContent = "live";
      } catch (e) {
        showError(e);
      }
      if (state.view === view && !$("main").hidden) state.timer = setTimeout(tick, ms);
    };
    tick();
  }

  // Fleet.
  async function fleet() {
    const f = await api("fleet");
    const s = f.relay;
    $("#who").textContent = s.name + " · " + s.topic;
    const card = (v, label, attrs) => el("div", { class: "card", ...attrs }, el("b", {}, v), el("span", {}, label));
    const lat = s.produce_latency;
    $("#self").replaceChildren(
      card(el("span", { class: "pill", dataset: { state: s.ready ? "ready" : "unready" } }, s.ready ? "ready" : "not ready"), "this relay: " + s.name, { id: "self-ready" }),
      card(s.connections, "connections", { id: "self-conns" }),
      card(s.rooms, "rooms with local members"),
      card(lat.count ? lat.p50_ms + " / " + lat.p99_ms + " ms" : "–", "produce latency p50 / p99 (" + lat.count + " records)"),
      card(s.partitions.reduce((n, p) => n + p.lag, 0), "consumer lag, records"),
      card(s.log_records, "records folded"),
    );
    fill($("#relays tbody"), f.relays.map((r) => row([
      el("td", {}, r.name, r.self ? el("small", {}, " (this relay)") : ""), mono(r.session), mono(time(r.last_lease)), ms(r.silent_ms),
      el("td", {}, el("span", { class: "pill", dataset: { state: r.status } }, r.status)), r.members, r.partitions,
    ], { dataset: { relay: r.name, status: r.status, members: r.members } })));
    // With --follow interest a relay folds some partitions only: "kept" (it is their keeper), "followed" (its
    // rooms need them) or "not followed" (next offset: where its fold stopped; no lag).
    fill($("#partitions tbody"), s.partitions.map((p) => row([
      p.partition, el("td", {}, el("span", { class: "pill", dataset: { state: p.follow } }, p.follow)), p.keeper || "–",
      mono(p.next), p.follow === "not followed" ? "–" : p.lag,
    ], { dataset: { partition: p.partition, follow: p.follow } })));
  }

  // Rooms.
  async function rooms() {
    const r = await api("rooms", { prefix: $("#prefix").value, q: $("#q").value });
    fill($("#rooms tbody"), r.rooms.map((x) => row([x.room, x.partition, x.members, x.keys, x.messages, mono(x.last || "")],
      { class: "click", dataset: { room: x.room }, onclick: () => (location.hash = "#room/" + encodeURIComponent(x.room)) })));
    $("#rooms-more").hidden = !r.more;
  }
  $("#search").addEventListener("submit", (e) => {
    e.preventDefault();
    rooms().catch(showError);
  });

  /** The tables of a room's state: members, key-value state, recent messages. */
  function stateTables(st) {
    const members = el("table", { class: "members" }, el("thead", {}, row(["connection", "user", "relay", "joined"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...st.members.map((m) => row([mono(m.conn), m.user || "", m.relay, mono(time(m.joined_at))], { dataset: { conn: m.conn, relay: m.relay } }))));
    const keys = Object.keys(st.state).sort();
    const kv = el("table", { class: "kv" }, el("thead", {}, row(["key", "value", "version"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...keys.map((k) => row([mono(k), mono(json(st.state[k].value)), mono(st.state[k].version)], { dataset: { key: k } }))));
    const msgs = el("table", { class: "messages" }, el("thead", {}, row(["pos", "time", "event", "from", "user", "data"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...st.history.slice().reverse().map((m) => row([mono(m.pos), mono(time(m.timestamp)), m.event, mono(m.from || ""), m.user || "", el("td", { class: "mono data" }, json(m.data))], { dataset: { pos: m.pos } }))));
    return [
      el("div", {}, el("h3", {}, "Members ", el("small", {}, st.members.length)), members),
      el("div", {}, el("h3", {}, "State ", el("small", {}, keys.length + (keys.length === 1 ? " key" : " keys") + ", with versions")), kv),
      el("div", { class: "msgs" }, el("h3", {}, "Recent messages ", el("small", {}, st.history.length)), msgs),
    ];
  }

  async function room() {
    const r = await api("room", { room: state.room });
    $("#room-at").textContent = "partition " + r.room.partition + " · at " + r.room.at;
    $("#room-live").replaceChildren(...stateTables(r.room));
  }

  // Timeline.
  const colors = { publish: "#2f6fde", join: "#1f8a4c", leave: "#c05621", set: "#805ad5", del: "#c53030", incr: "#805ad5", cas: "#805ad5", lease: "#a0aec0", expire: "#c53030" };
  for (const t of Object.keys(colors)) $("#f-type").append(el("option", { value: t }, t));

  function filters() {
    return { room: state.room, event: $("#f-event").value, sender: $("#f-sender").value, user: $("#f-user").value, type: $("#f-type").value };
  }
  async function timeline() {
    const r = await api("records", { ...filters(), limit: 5000 });
    state.records = r.records;
    state.end = r.end;
    state.a = state.b = null;
    $("#a-pos").textContent = $("#b-pos").textContent = "–";
    $("#diff-view").hidden = true;
    drawRecords();
    $("#slider").value = $("#slider").max;
    await showStateAt();
  }
  function drawRecords() {
    const recs = state.records;
    const s = $("#slider");
    s.max = Math.max(recs.length - 1, 0);
    s.disabled = recs.length === 0;
    $("#rec-count").textContent = recs.length + " records" + (recs.length ? " from " + recs[0].pos + " to " + recs.at(-1).pos : "");
    fill($("#records tbody"), recs.slice().reverse().slice(0, 500).map((x) => row([
      mono(x.pos), mono(time(x.timestamp)), x.type, x.event || x.key || "", mono(x.from || ""), x.user || "",
      el("td", { class: "mono data" }, x.delta != null ? x.delta : json(x.data)),
    ], { dataset: { pos: x.pos, type: x.type } })));
    const svg = $("#strip");
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    if (!recs.length) return;
    const lo = recs[0].offset, hi = Math.max(recs.at(-1).offset, lo + 1);
    const x = (off) => 10 + (980 * (off - lo)) / (hi - lo);
    for (const r of recs) {
      const l = document.createElementNS(NS, "line");
      const y = { publish: 8, join: 26, leave: 26 }[r.type] ?? 44;
      for (const [k, v] of Object.entries({ x1: x(r.offset), x2: x(r.offset), y1: y, y2: y + 16, stroke: colors[r.type] || "#999", "stroke-width": 2 })) l.setAttribute(k, v);
      svg.append(l);
    }
    const cursor = document.createElementNS(NS, "rect");
    cursor.id = "cursor";
    for (const [k, v] of Object.entries({ y: 0, width: 3, height: 70, fill: "#1d2330", opacity: 0.6 })) cursor.setAttribute(k, v);
    svg.append(cursor);
    state.x = x;
    $("#axis-lo").textContent = recs[0].pos + " · " + time(recs[0].timestamp);
    $("#axis-hi").textContent = recs.at(-1).pos + " · " + time(recs.at(-1).timestamp);
  }
  function selected() {
    return state.records[+$("#slider").value];
  }
  async function showStateAt() {
    const r = selected();
    if (!r) {
      $("#tl-state").replaceChildren(el("p", { class: "muted" }, "No records of this room in the slice."));
      return;
    }
    $("#cursor")?.setAttribute("x", state.x(r.offset) - 1);
    $("#slider-at").textContent = r.pos + " · " + time(r.timestamp);
    const seq = ++state.stateSeq;
    const st = await api("state", { room: state.room, at: r.pos });
    if (seq !== state.stateSeq) return; // the slider moved on
    $("#tl-state").replaceChildren(...stateTables(st));
    $("#state-json").textContent = JSON.stringify(st, null, 2);
    $("#state-json").dataset.at = r.pos;
  }
  let sliderTimer = 0;
  for (const ev of ["input", "change"]) {
    $("#slider").addEventListener(ev, () => {
      clearTimeout(sliderTimer);
      sliderTimer = setTimeout(() => showStateAt().catch(showError), 120);
    });
  }
  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    timeline().catch(showError);
  });
  $("#mark-a").addEventListener("click", () => ($("#a-pos").textContent = (state.a = selected())?.pos ?? "–"));
  $("#mark-b").addEventListener("click", () => ($("#b-pos").textContent = (state.b = selected())?.pos ?? "–"));
  $("#diff").addEventListener("click", async () => {
    if (!state.a || !state.b) return showError(new Error("mark A and B on the slider first"));
    let [a, b] = [state.a, state.b];
    if (b.offset < a.offset) [a, b] = [b, a];
    try {
      const d = await api("state", { room: state.room, at: a.pos, diff: b.pos });
      $("#diff-range").textContent = a.pos + " → " + b.pos + " · " + d.changes.length + " records";
      fill($("#changes tbody"), d.changes.map((c) => row([
        mono(c.pos), mono(time(c.timestamp)), c.type, c.event || c.key || "", mono(c.from || ""), mono(describeResult(c.result)),
      ])));
      $("#diff-json").textContent = JSON.stringify(d, null, 2);
      $("#diff-json").dataset.range = a.pos + " " + b.pos;
      $("#diff-view").hidden = false;
    } catch (e) {
      showError(e);
    }
  });
  function describeResult(r) {
    const out = [];
    if (r.code) out.push("refused: " + r.code);
    if (r.duplicate) out.push("duplicate");
    if (r.joined) out.push("joined " + r.joined);
    if (r.left) out.push("left " + r.left.join(", "));
    if (r.version != null) out.push("= " + json(r.value) + " (v" + r.version + ")");
    return out.join("; ") || "–";
  }
  $("#export").addEventListener("click", async () => {
    const [a, b] = [state.a, state.b].sort((x, y) => (x && y ? x.offset - y.offset : 0));
    const lo = a ?? state.records[0], hi = (a && b ? b : null) ?? state.records.at(-1);
    try {
      const blob = await api("export", { ...filters(), from: lo?.pos, to: hi?.pos });
      const link = el("a", { href: URL.createObjectURL(blob), download: "roomlog-export-" + state.room.replace(/[^\w.-]+/g, "_") + ".jsonl" });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (e) {
      showError(e);
    }
  });
  // Live tail: new records of the room as the relay folds them; a slider at the end follows.
  $("#tail").addEventListener("change", () => {
    clearTimeout(state.tailTimer);
    if ($("#tail").checked) tail();
  });
  async function tail() {
    if (state.view !== "timeline" || !$("#tail").checked) return;
    try {
      const last = state.records.at(-1);
      const atEnd = +$("#slider").value === state.records.length - 1 || !last;
      const r = await api("records", { ...filters(), from: last ? last.pos.replace(/^(\d+)-(\d+)-/, (_, p, o) => p + "-" + (+o + 1) + "-") : "", limit: 5000 }).catch((e) => {
        if (/past_end/.test(e.message)) return { records: [] }; // nothing new yet
        throw e;
      });
      if (r.records.length) {
        state.records.push(...r.records);
        drawRecords();
        if (atEnd) {
          $("#slider").value = $("#slider").max;
          await showStateAt();
        }
      }
    } catch (e) {
      showError(e);
    }
    state.tailTimer = setTimeout(tail, 1000);
  }

  // Routing: #fleet, #rooms, #room/<name>, #timeline/<name>.
  function route() {
    stopTimers();
    const [view, arg] = (location.hash.slice(1) || "fleet").split(/\/(.*)/s);
    state.view = view;
    if (arg !== undefined) state.room = decodeURIComponent(arg);
    for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-" + view;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
    if (state.room) {
      const enc = encodeURIComponent(state.room);
      Object.assign($("#nav-room"), { hidden: false, href: "#room/" + enc, textContent: "Room " + state.room });
      Object.assign($("#nav-timeline"), { hidden: false, href: "#timeline/" + enc });
      $("#to-timeline").href = "#timeline/" + enc;
    }
    $("#room-name").textContent = $("#tl-name").textContent = state.room;
    if (view === "fleet") every(1000, fleet);
    else if (view === "rooms") every(3000, rooms);
    else if (view === "room") every(1000, room);
    else if (view === "timeline") {
      timeline().catch(showError);
      if ($("#tail").checked) tail();
    }
  }
  addEventListener("hashchange", route);
  if (mode === "open") $("#open-banner").hidden = false;
  route();
})();
