import { Emitter } from "./emitter.js";
import { closeError, RoomlogError } from "./errors.js";
import { Room, type RoomOptions } from "./room.js";
import type {
  ClientEvents,
  ClientOptions,
  ConnectionState,
  PublishAck,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";
import { CONN, type Frame, ONCE, RETRY } from "./request.js";
import { backoff, randomPrefix } from "./utils.js";

interface Req {
  text: string;
  kind: number;
  at: number;
  sent: number; // the connection (generation) it was sent on; 0: waiting
  retries: number;
  resolve(ack: Frame): void;
  reject(err: RoomlogError): void;
}

type Timer = ReturnType<typeof setTimeout>;

/**
 * A connection to a roomlog relay fleet, as one state machine:
 * disconnected → connecting → connected → (link lost) disconnected → connecting ... → closed.
 *
 * Every transition happens in open(), ready() and lost(); a connection's events and timers carry its generation
 * number and are ignored once it is gone. Rooms rejoin with `since` on every new connection; publishes and reads
 * wait in a bounded queue while there is none and are sent again after a reconnect.
 */
export class Client extends Emitter<ClientEvents> {
  state: ConnectionState = "disconnected";
  /** The URL of the current (or last) connection. */
  url?: string;
  /** This connection's id (the `from` of its messages) and its relay's id, from the welcome frame. */
  conn?: string;
  relay?: string;
  /** The user id from the token, when authenticated. */
  user?: string;

  private urls: string[];
  private o: ClientOptions;
  private WS: WebSocketConstructor;
  private ws?: WebSocketLike;
  private gen = 0;
  private ready = false;
  private urlIndex = -1;
  private attempt = 0;
  private lastRecv = 0;
  private lastPing = 0;
  private reqs = new Map<number, Req>();
  private nextId = 1;
  private rooms = new Map<string, Room>();
  private midPrefix = randomPrefix();
  private midSeq = 0;
  private reconnectTimer?: Timer;
  private connectTimer?: Timer;
  private refreshTimer?: Timer;
  private tickTimer?: ReturnType<typeof setInterval>;

  constructor(options: ClientOptions) {
    super();
    this.o = options;
    this.urls = ([] as string[]).concat(options.url);
    const WS = options.WebSocket || (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!this.urls.length) throw new TypeError("roomlog: no url");
    if (!WS) throw new TypeError("roomlog: no WebSocket implementation; pass options.WebSocket (the ws package in Node)");
    this.WS = WS;
  }

  /** Starts connecting (and reconnecting until close()). Returns the client. */
  connect(): this {
    if (this.state !== "closed" && (this.ws || this.reconnectTimer)) return this;
    this.state = "disconnected";
    const hb = this.o.heartbeat;
    this.tickTimer = setInterval(() => this.tick(), Math.min(1000, hb === false ? 1000 : (hb?.interval || 10000) / 2));
    this.listenOnline(true);
    this.open();
    return this;
  }

  /** Closes the connection for good: pending ops reject with `closed`. connect() starts again. */
  close(): void {
    if (this.state === "closed") return;
    this.setState("closed");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearInterval(this.tickTimer);
    this.listenOnline(false);
    if (this.ws) this.drop(this.gen, new RoomlogError("closed", "the client was closed", { closeCode: 1000 }));
    const err = new RoomlogError("closed", "the client was closed");
    for (const req of this.reqs.values()) req.reject(err);
    this.reqs.clear();
    for (const room of this.rooms.values()) room.lost(err);
  }

  /** The room named `name` (one object per name). Call join() on it to receive its messages. */
  room(name: string, options: RoomOptions = {}): Room {
    let r = this.rooms.get(name);
    if (!r) this.rooms.set(name, (r = new Room(this, name, options)));
    return r;
  }

  /** Publishes to any room, joined or not. Resolves with the ack once the log has the message; retried with the
   * same message id after a reconnect, so it is delivered once. */
  publish(room: string, data: unknown, options: { event?: string; mid?: string } = {}): Promise<PublishAck> {
    const mid = options.mid || this.midPrefix + "-" + ++this.midSeq;
    const f: Frame = { op: "publish", room, data, mid };
    if (options.event) f.event = options.event;
    return this.request(f, RETRY).then((a) => ({ pos: a.pos, duplicate: !!a.duplicate, mid }));
  }

  /** @internal Sends an op and resolves with its ack (rejects with its error). */
  request(frame: Frame, kind: number): Promise<Frame> {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") return reject(new RoomlogError("closed", "the client is closed"));
      const id = this.nextId++;
      const text = JSON.stringify({ ...frame, id });
      const max = this.o.maxMessageBytes || 65536;
      if (text.length * 3 > max && new TextEncoder().encode(text).length > max) {
        return reject(new RoomlogError("message_too_big", "the frame is over " + max + " bytes"));
      }
      if (!this.ready && kind !== CONN && this.reqs.size >= (this.o.queue?.max || 1000)) {
        return reject(new RoomlogError("queue_full", "the offline queue is full"));
      }
      const req: Req = { text, kind, at: Date.now(), sent: 0, retries: 0, resolve, reject };
      this.reqs.set(id, req);
      this.send(id, req);
    });
  }

  /** @internal Runs fn after a backoff delay if this connection is still up. */
  later(retries: number, fn: () => void): void {
    const gen = this.gen;
    setTimeout(() => gen === this.gen && this.ready && fn(), backoff(retries, 200, 5000));
  }

  /** @internal */
  isReady(): boolean {
    return this.ready;
  }

  private send(id: number, req: Req): void {
    if (!this.ws || req.sent === this.gen || !(this.ready || req.kind === CONN)) return;
    req.sent = this.gen;
    try {
      this.ws.send(req.text);
    } catch {
      // The socket is closing: its close event comes next and the op is handled there.
    }
  }

  private setState(state: ConnectionState): void {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    this.emit("state", { state, previous, attempt: this.attempt });
  }

  // open starts a connection to the next URL.
  private open(): void {
    this.reconnectTimer = undefined;
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    const url = (this.url = this.urls[this.urlIndex]);
    const gen = ++this.gen;
    this.setState("connecting");
    this.connectTimer = setTimeout(
      () => this.drop(gen, new RoomlogError("connect_timeout", "no welcome from " + url + " in time")),
      this.o.connectTimeout || 10000,
    );
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch (e) {
      return this.lost(gen, new RoomlogError("connection_lost", String(e)));
    }
    this.ws = ws;
    this.lastRecv = Date.now();
    ws.onmessage = (ev) => gen === this.gen && this.onFrame(gen, ev.data);
    ws.onclose = (ev) => this.lost(gen, closeError(ev.code, ev.reason));
    ws.onerror = () => {}; // a close event follows
  }

  private onFrame(gen: number, data: string): void {
    this.lastRecv = Date.now();
    let f: Frame;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    switch (f.op) {
      case "welcome":
        this.conn = f.conn;
        this.relay = f.relay;
        if (this.o.getToken) this.auth(gen, false);
        else this.onReady(gen);
        return;
      case "ack":
      case "error":
        return this.reply(f);
      case "pong":
        return;
    }
    this.rooms.get(f.room)?.onFrame(f);
  }

  private reply(f: Frame): void {
    const req = this.reqs.get(f.id);
    if (f.op === "ack") {
      if (req) {
        this.reqs.delete(f.id);
        req.resolve(f);
      }
      return;
    }
    const err = new RoomlogError(f.code, f.message, "version" in f ? { value: f.value, version: f.version } : undefined);
    if (!req) return this.emit("error", err);
    if (req.kind === RETRY && (f.code === "log_unavailable" || f.code === "rate_limited" || f.code === "shutting_down")) {
      // Not taken: send again (same id and mid) after a pause, or after the reconnect a draining relay forces.
      req.sent = 0;
      if (f.code !== "shutting_down") this.later(req.retries++, () => this.send(f.id, req));
      return;
    }
    this.reqs.delete(f.id);
    req.reject(err);
  }

  private async auth(gen: number, refresh: boolean): Promise<void> {
    let token: string;
    try {
      token = await this.o.getToken!();
    } catch (e) {
      if (gen !== this.gen) return;
      const err = new RoomlogError("token_error", "getToken failed: " + ((e as Error)?.message || e));
      if (!refresh) return this.drop(gen, err);
      this.emit("error", err);
      this.refreshTimer = setTimeout(() => this.auth(gen, true), 5000);
      return;
    }
    if (gen !== this.gen) return;
    this.request({ op: "auth", token }, CONN).then(
      (ack) => {
        if (gen !== this.gen) return;
        this.user = ack.user;
        this.emit("auth", { user: ack.user, exp: ack.exp, refresh });
        if (ack.exp && this.o.refreshToken !== false) {
          const ttl = ack.exp * 1000 - Date.now();
          clearTimeout(this.refreshTimer);
          this.refreshTimer = setTimeout(() => this.auth(gen, true), Math.max(0, ttl - Math.min(30000, ttl / 2)));
        }
        if (!refresh) this.onReady(gen);
      },
      // A refused first token closes the connection (4004); a refused refresh leaves it until expiry (4003).
      (err) => refresh && gen === this.gen && this.emit("error", err),
    );
  }

  private onReady(gen: number): void {
    if (gen !== this.gen) return;
    clearTimeout(this.connectTimer);
    this.ready = true;
    this.attempt = 0;
    this.setState("connected");
    this.emit("connected", { url: this.url!, conn: this.conn!, relay: this.relay!, user: this.user });
    for (const room of this.rooms.values()) room.rejoin();
    for (const [id, req] of this.reqs) this.send(id, req);
  }

  // drop abandons connection gen at once (a dead link may never deliver its close event) and handles the loss.
  private drop(gen: number, err: RoomlogError): void {
    const ws = this.ws;
    if (gen !== this.gen || !ws) return this.lost(gen, err);
    ws.onmessage = ws.onclose = null;
    try {
      const t = (ws as { terminate?: () => void }).terminate;
      if (t && err.code !== "closed") t.call(ws);
      else ws.close(1000);
    } catch {
      // already closed
    }
    this.lost(gen, err);
  }

  // lost ends connection gen: ops sent on it are kept for the next one or rejected, rooms wait to rejoin, and a
  // reconnect is scheduled.
  private lost(gen: number, err: RoomlogError): void {
    if (gen !== this.gen) return;
    this.gen++;
    this.ready = false;
    this.ws = undefined;
    clearTimeout(this.connectTimer);
    clearTimeout(this.refreshTimer);
    if (err.closeCode === 1009) this.rejectLargest(gen);
    const gone = new RoomlogError("disconnected", "the connection was lost before the ack: the op may or may not have taken effect");
    for (const [id, req] of this.reqs) {
      if (req.kind === CONN) this.reqs.delete(id);
      else if (req.sent === gen) {
        req.sent = 0;
        if (req.kind === ONCE) {
          this.reqs.delete(id);
          req.reject(gone);
        }
      }
    }
    for (const room of this.rooms.values()) room.lost();
    this.emit("disconnected", { url: this.url!, code: err.closeCode || 1006, reason: err.message, error: err });
    if (err.closeCode === 4011) return this.close(); // the backend ended this user's session: reconnecting would undo it
    if (this.state === "closed") return;
    this.setState("disconnected");
    this.reconnectTimer = setTimeout(() => this.open(), backoff(this.attempt++, this.o.reconnect?.min || 500, this.o.reconnect?.max || 15000));
  }

  // After a 1009 close, the largest op in flight is the likely culprit: reject it rather than send it again.
  private rejectLargest(gen: number): void {
    let big: number | undefined;
    for (const [id, req] of this.reqs) if (req.sent === gen && (big === undefined || req.text.length > this.reqs.get(big)!.text.length)) big = id;
    if (big === undefined) return;
    this.reqs.get(big)!.reject(new RoomlogError("message_too_big", "the relay refused a frame this big (1009)", { closeCode: 1009 }));
    this.reqs.delete(big);
  }

  // tick runs the heartbeat and expires ops that waited too long for a connection.
  private tick(): void {
    const now = Date.now();
    const hb = this.o.heartbeat;
    if (this.ready && hb !== false) {
      const quiet = now - this.lastRecv;
      if (quiet > (hb?.timeout || 25000)) {
        return this.drop(this.gen, new RoomlogError("heartbeat_timeout", "nothing heard from " + this.url + " for " + quiet + " ms"));
      }
      if (quiet >= (hb?.interval || 10000) && now - this.lastPing >= (hb?.interval || 10000)) {
        this.lastPing = now;
        try {
          this.ws!.send('{"op":"ping"}');
        } catch {
          // closing
        }
      }
    }
    const maxAge = this.o.queue?.maxAge || 60000;
    for (const [id, req] of this.reqs) {
      if (req.sent === 0 && req.kind !== CONN && now - req.at > maxAge) {
        this.reqs.delete(id);
        req.reject(new RoomlogError("queue_timeout", "waited more than " + maxAge + " ms for a connection"));
      }
    }
  }

  private onOnline = (): void => {
    if (this.state === "closed" || this.ws) return;
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    this.open();
  };

  private onOffline = (): void => {
    if (this.ws) this.drop(this.gen, new RoomlogError("offline", "the browser went offline"));
  };

  private listenOnline(on: boolean): void {
    const g = globalThis as { addEventListener?: Function; removeEventListener?: Function };
    const f = on ? g.addEventListener : g.removeEventListener;
    if (typeof f !== "function") return;
    f.call(g, "online", this.onOnline);
    f.call(g, "offline", this.onOffline);
  }
}
