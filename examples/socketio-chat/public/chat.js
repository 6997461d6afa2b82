// The chat's browser code: the same file for the Socket.IO original and for roomlog. Only config.js differs
// (window.CHAT_CONFIG: where io() connects). The protocol both servers speak:
//   socket.emit("join", room, opts, ack)        ack {ok: true} (roomlog adds pos); opts.since resumes on roomlog
//   socket.emit("chat", room, {user, text}, ack) ack {ok: true} or {ok: false, code, message}
//   socket.on("chat", (data, meta) => ...)      meta {room, from} (roomlog adds pos and user)
//   socket.on("moderation", (data) => ...)      {id, from, reason}: a message removed after the fact (roomlog)
/* global io */
(function () {
  "use strict";
  const config = window.CHAT_CONFIG;
  const params = new URLSearchParams(location.search);
  const room = params.get("room") || "lobby";
  const me = params.get("name") || "guest-" + Math.random().toString(36).slice(2, 6);
  const $ = (id) => document.getElementById(id);
  $("room-name").textContent = room;
  $("me").textContent = me;
  $("server").textContent = config.server;

  const socket = io(config.url || undefined, config.options || {});
  // The position of the last message seen: roomlog's meta.pos, so a rejoin after a reconnection (on any relay)
  // gets what was missed. A Socket.IO server sends none, and the rejoin starts from now.
  let lastPos = null;

  function setStatus(state, text) {
    $("status").dataset.state = state;
    $("status").textContent = text;
  }

  function showError(text) {
    $("error").textContent = text;
    $("error").hidden = !text;
  }

  socket.on("connect", () => {
    setStatus("connecting", "joining");
    socket.emit("join", room, lastPos ? { since: lastPos } : {}, (ack) => {
      if (ack && ack.ok) setStatus("connected", "connected");
      else showError("join refused: " + (ack ? ack.message : "no answer"));
    });
  });
  socket.on("disconnect", (reason) => setStatus("disconnected", "disconnected (" + reason + "), reconnecting"));
  socket.on("connect_error", (err) => setStatus("disconnected", "cannot connect: " + err.message));

  socket.on("chat", (data, meta) => {
    if (!meta || meta.room !== room || !data || typeof data !== "object") return;
    if (meta.pos) lastPos = meta.pos;
    const li = document.createElement("li");
    li.dataset.from = meta.from || "";
    li.dataset.id = typeof data.id === "string" ? data.id : "";
    if (meta.pos) li.dataset.pos = meta.pos;
    if (data.user === "bot") li.classList.add("bot");
    const user = document.createElement("span");
    user.className = "user";
    user.textContent = String(data.user);
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = String(data.text);
    li.append(user, text);
    if (meta.pos) {
      const pos = document.createElement("span");
      pos.className = "pos";
      pos.textContent = meta.pos;
      li.append(pos);
    }
    $("messages").append(li);
  });

  socket.on("moderation", (data) => {
    if (!data || typeof data !== "object") return;
    for (const li of $("messages").children) {
      if (li.dataset.id === data.id && li.dataset.from === data.from) {
        li.classList.add("removed");
        li.querySelector(".text").textContent = "removed by the moderator: " + data.reason;
      }
    }
  });

  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    const id = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
    socket.emit("chat", room, { id, user: me, text }, (ack) => {
      if (ack && ack.ok) showError("");
      else showError("not sent: " + (ack ? ack.message : "no answer"));
    });
    $("text").value = "";
  });

  window.chat = { socket, room, me }; // for the tests and the console
})();
