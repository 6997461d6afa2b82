// The demo page: one room's chat, its members and a shared counter, with the connection's state in view.
// Plain browser JavaScript on the SDK's bundle (global Roomlog, from sdk/js). Query parameters:
// ?relays=ws://a/ws,ws://b/ws (default: this relay) and ?room=name (default: lobby).
"use strict";
(() => {
  const { Client } = Roomlog;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const own = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const relays = (params.get("relays") || own).split(",");
  const needsToken = document.querySelector('meta[name="roomlog-auth"]').content === "token";
  const mine = new Set(); // this page's connection ids, one per reconnect
  const rooms = new Map(); // name → { room, messages: Map(pos → message), members: Map(conn → member), counter }
  let client;
  let token = "";
  let current; // the shown room's entry

  const offset = (pos) => Number(String(pos).split("-")[1]);
  const short = (s) => (s && s.length > 14 ? s.slice(0, 13) + "…" : s || "backend");

  function showError(err) {
    const box = $("error");
    const code = document.createElement("code");
    code.textContent = err.code || "error";
    box.replaceChildren(code, ": " + err.message);
    box.dataset.code = err.code || "error";
    box.hidden = false;
  }

  function setStatus(state, text) {
    $("status").dataset.state = state;
    $("status-text").textContent = text;
  }

  function renderMessages() {
    if (!current) return;
    const list = $("messages");
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    const sorted = [...current.messages.values()].sort((a, b) => offset(a.pos) - offset(b.pos)).slice(-200);
    list.replaceChildren(
      ...sorted.map((m) => {
        const li = document.createElement("li");
        li.dataset.pos = m.pos;
        if (mine.has(m.from)) li.className = "mine";
        const who = document.createElement("span");
        who.className = "who";
        who.textContent = m.user || short(m.from);
        const text = document.createElement("span");
        text.className = "text";
        text.textContent = m.event === "chat" && m.data && typeof m.data.text === "string" ? m.data.text : JSON.stringify(m.data);
        const pos = document.createElement("span");
        pos.className = "pos";
        pos.textContent = "#" + offset(m.pos);
        li.append(who, text, pos);
        return li;
      }),
    );
    if (stick) list.scrollTop = list.scrollHeight;
    $("position").textContent = "pos " + (current.room.position || "—");
  }

  function renderSide() {
    if (!current) return;
    $("counter").textContent = String(current.counter);
    const items = [...current.members.values()].map((m) => {
      const li = document.createElement("li");
      // This page's current connection is "you". An earlier one (on a relay that went away) stays a member until
      // that relay's lease expires in the log: say so rather than listing "you" twice.
      if (m.conn === client?.conn) {
        li.className = "you";
        li.textContent = "you · ";
      } else if (mine.has(m.conn)) {
        li.className = "earlier";
        li.title = "this page's connection before it reconnected; it leaves once its relay's lease expires";
        li.textContent = "you, before reconnecting · ";
      }
      li.append((m.user || m.conn) + " ");
      const relay = document.createElement("span");
      relay.className = "relay";
      relay.textContent = "on " + m.relay;
      li.append(relay);
      return li;
    });
    $("members").replaceChildren(...items);
    $("member-count").textContent = "(" + items.length + ")";
  }

  // resync replaces what the page shows of a room with the truth: members, counter, and recent history when asked.
  async function resync(entry, withHistory) {
    const r = entry.room;
    const [members, counter, page] = await Promise.all([
      r.presence(),
      r.get("counter"),
      withHistory ? r.history({ limit: 50 }) : null,
    ]);
    entry.members = new Map(members.map((m) => [m.conn, m]));
    entry.counter = counter.value || 0;
    if (page) for (const m of page.messages) entry.messages.set(m.pos, m);
    if (entry === current) {
      renderSide();
      renderMessages();
    }
  }

  function entryFor(name) {
    let entry = rooms.get(name);
    if (entry) return entry;
    const r = client.room(name, { presence: true });
    entry = { room: r, messages: new Map(), members: new Map(), counter: 0, subscribed: 0 };
    rooms.set(name, entry);
    const redraw = (fn) => entry === current && fn();
    r.on("message", (m) => {
      entry.messages.set(m.pos, m);
      redraw(renderMessages);
    });
    r.on("state", (s) => {
      if (s.key !== "counter") return;
      entry.counter = s.value || 0;
      redraw(renderSide);
    });
    r.on("joined", ({ member }) => {
      entry.members.set(member.conn, member);
      redraw(renderSide);
    });
    r.on("left", ({ member }) => {
      entry.members.delete(member.conn);
      redraw(renderSide);
    });
    r.on("subscribed", (ev) => {
      entry.subscribed++;
      if (ev.resumed) {
        $("recovery").textContent = ev.recovered ? "recovered: every missed message replayed, rejoined at #" + offset(ev.pos) : "gap: resyncing from history";
        $("recovery").dataset.state = ev.recovered ? "recovered" : "gap";
      } else {
        $("recovery").textContent = "joined at #" + offset(ev.pos);
      }
      resync(entry, entry.subscribed === 1).catch(showError);
    });
    r.on("gap", () => {
      // Some messages are gone from the log (retention): show the newest history instead.
      entry.messages.clear();
      resync(entry, true).catch(showError);
    });
    return entry;
  }

  async function join(name) {
    $("error").hidden = true;
    const entry = entryFor(name);
    try {
      await entry.room.join();
    } catch (err) {
      showError(err); // forbidden, invalid_room...: stay where we are
      return;
    }
    if (current && current !== entry) current.room.leave();
    current = entry;
    const url = new URL(location.href);
    url.searchParams.set("room", name);
    history.replaceState(null, "", url);
    renderMessages();
    renderSide();
  }

  function start() {
    client = new Client({ url: relays, getToken: needsToken ? () => token : undefined, heartbeat: { interval: 5000, timeout: 15000 } });
    client.on("state", ({ state, attempt }) => {
      if (state === "connecting") setStatus(state, attempt ? "reconnecting (attempt " + (attempt + 1) + ")…" : "connecting…");
      else if (state === "disconnected") setStatus(state, "reconnecting…");
      else if (state === "closed") setStatus(state, "closed");
    });
    client.on("connected", (c) => {
      mine.add(c.conn);
      setStatus("connected", "connected to " + c.url.replace(/^wss?:\/\//, ""));
      $("relay").textContent = c.relay + " · " + c.url;
      $("me").textContent = c.conn + (c.user ? " · " + c.user : "");
    });
    client.on("disconnected", ({ error }) => {
      if (error.code === "unauthorized" || error.code === "token_expired") {
        showError(error);
        $("token-form").hidden = false;
      }
    });
    client.on("error", showError);
    client.connect();
    join(params.get("room") || "lobby");
  }

  $("room").value = params.get("room") || "lobby";
  $("room-form").addEventListener("submit", (e) => {
    e.preventDefault();
    join($("room").value.trim());
  });
  $("send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value;
    if (!text || !current) return;
    $("text").value = "";
    $("error").hidden = true;
    current.room.publish({ text }, { event: "chat" }).catch(showError);
  });
  $("incr").addEventListener("click", () => {
    current?.room.incr("counter").then((e) => {
      current.counter = e.value;
      renderSide();
    }, showError);
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    $("token-form").hidden = true;
    if (!client) start();
  });

  if (needsToken) $("token-form").hidden = false;
  else start();
  window.demo = { get client() { return client; }, get room() { return current && current.room; } };
})();
