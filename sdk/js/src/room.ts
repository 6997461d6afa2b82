import { Emitter } from "./emitter.js";
import type { RoomlogError } from "./errors.js";
import type { Entry, HistoryPage, Member, Message, Position, PublishAck, RoomEvents } from "./types.js";
import { CONN, type Frame, ONCE, RETRY, type RoomHost } from "./request.js";
import { isAfter } from "./utils.js";

export interface RoomOptions {
  /** Also receive `joined` and `left` events for the room's other members. */
  presence?: boolean;
  /** Resume from this position (one saved from an earlier session): messages after it come first. */
  since?: Position;
}

type Subscribed = RoomEvents["subscribed"];

/**
 * A room. After join() it receives the room's messages, state changes and (with `presence`) members' comings and
 * goings, and after every reconnect it rejoins with `since` set to the last position it saw: the app sees every
 * message once, in log order. Duplicates (a position not after the last one) are dropped.
 */
export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  /** The last position seen in this room: where a rejoin resumes. Save it to resume across page loads. */
  position?: Position;
  /** Subscribed on the current connection. */
  joined = false;
  private client: RoomHost;
  private presenceEvents: boolean;
  private wanted = false;
  private waiters: Array<[(s: Subscribed) => void, (e: RoomlogError) => void]> = [];
  private lastWrite?: Position;
  private retries = 0;

  /** @internal Use client.room(name). */
  constructor(client: RoomHost, name: string, options: RoomOptions) {
    super();
    this.client = client;
    this.name = name;
    this.presenceEvents = !!options.presence;
    this.position = options.since;
  }

  /** Joins the room (now, or on connect) and stays joined across reconnects until leave(). Resolves when the relay
   * has folded the join; rejects with a RoomlogError if it refuses it (forbidden, invalid_room, ...). */
  join(): Promise<Subscribed> {
    return new Promise((resolve, reject) => {
      if (this.joined) return resolve({ pos: this.position, resumed: false });
      this.waiters.push([resolve, reject]);
      if (this.wanted) return;
      this.wanted = true;
      if (this.client.isReady()) this.rejoin();
    });
  }

  /** Leaves the room: no more events from it, and no rejoin after reconnects. */
  async leave(): Promise<void> {
    const was = this.wanted;
    this.wanted = this.joined = false;
    if (was && this.client.isReady()) await this.client.request(this.frame("leave"), ONCE).catch(() => {});
  }

  /** Publishes to the room (see Client.publish). */
  publish(data: unknown, options?: { event?: string; mid?: string }): Promise<PublishAck> {
    return this.client.publish(this.name, data, options).then((a) => this.wrote(a));
  }

  /** A key's value and version, at least as new as this client's own last write. Absent: null, version 0. */
  get(key: string): Promise<Entry> {
    return this.read({ ...this.frame("get"), key }).then(entry);
  }

  /** Every key of the room's state. */
  getAll(): Promise<{ state: Record<string, { value: unknown; version: number }>; pos: Position }> {
    return this.read(this.frame("get")).then((a) => ({ state: a.state || {}, pos: a.pos }));
  }

  set(key: string, value: unknown): Promise<Entry> {
    return this.write({ ...this.frame("set"), key, value });
  }

  del(key: string): Promise<Entry> {
    return this.write({ ...this.frame("del"), key });
  }

  /** Adds delta (default 1) to an integer key (absent: 0). */
  incr(key: string, delta = 1): Promise<Entry> {
    return this.write({ ...this.frame("incr"), key, delta });
  }

  /** Sets key only if its version is `version` (0: only if absent); else rejects with code `conflict` and the
   * current value and version. */
  cas(key: string, value: unknown, version: number): Promise<Entry> {
    return this.write({ ...this.frame("cas"), key, value, version });
  }

  /** The room's members on every relay, in join order. */
  presence(): Promise<Member[]> {
    return this.read(this.frame("presence")).then((a) => a.members || []);
  }

  /** Up to `limit` messages before `before` (default: the newest), oldest first. Page back with
   * `before: page.messages[0].pos` while `more`. */
  history(options: { before?: Position; limit?: number } = {}): Promise<HistoryPage> {
    return this.client
      .request({ ...this.frame("history"), ...options }, RETRY)
      .then((a) => ({ messages: (a.messages || []) as Message[], more: !!a.more }));
  }

  /** @internal Sends the join on a fresh connection, resuming from the last position seen. */
  rejoin(): void {
    if (!this.wanted) return;
    const since = this.position;
    const f = this.frame("join");
    if (this.presenceEvents) f.presence = true;
    if (since) f.since = since;
    this.client.request(f, CONN).then(
      (ack) => this.subscribed(ack, since),
      (err) => this.refused(err, since),
    );
  }

  /** @internal The connection is gone; with an error, for good (client.close()): pending join() calls reject. */
  lost(closed?: RoomlogError): void {
    this.joined = false;
    if (closed) for (const [, reject] of this.waiters.splice(0)) reject(closed);
  }

  /** @internal A room frame: message, state, joined, left, removed. */
  onFrame(f: Frame): void {
    if (f.op === "removed") {
      // The server took this connection out of the room (the backend, or a refreshed token that no longer
      // allows it): the room stays left, and is not rejoined on reconnect.
      this.wanted = false;
      this.joined = false;
      return this.emit("removed", { reason: f.reason, pos: f.pos });
    }
    if (!this.joined && f.op !== "message") return;
    if (f.op === "message") {
      if (!isAfter(f.pos, this.position)) return; // already seen
    } else if (f.op === "joined" || f.op === "left") {
      return this.emit(f.op, f as any);
    }
    this.position = f.pos;
    this.emit(f.op, f as any);
  }

  private subscribed(ack: Frame, since?: Position): void {
    this.joined = this.wanted;
    this.retries = 0;
    if (ack.pos && isAfter(ack.pos, this.position)) this.position = ack.pos;
    const ev: Subscribed = { pos: ack.pos, resumed: !!since, recovered: ack.recovered };
    this.emit("subscribed", ev);
    if (ack.recovered === false) this.emit("gap", { reason: "not_recovered", since: since! });
    for (const [resolve] of this.waiters.splice(0)) resolve(ev);
  }

  private refused(err: RoomlogError, since?: Position): void {
    switch (err.code) {
      case "stale_position":
      case "bad_position":
        if (!since) break;
        this.position = undefined;
        this.emit("gap", { reason: err.code, since });
        return this.rejoin();
      case "relay_restarted":
        return this.rejoin();
      case "log_unavailable":
      case "rate_limited":
      case "timeout":
        return this.client.later(this.retries++, () => this.rejoin());
      case "shutting_down":
      case "closed":
        if (err.code === "shutting_down") return; // rejoins after the reconnect
    }
    this.wanted = false;
    if (err.code !== "closed") this.emit("error", err);
    for (const [, reject] of this.waiters.splice(0)) reject(err);
  }

  private frame(op: string): Frame {
    return { op, room: this.name };
  }

  private read(f: Frame): Promise<Frame> {
    if (this.lastWrite) f.after = this.lastWrite; // read your writes, on any relay
    return this.client.request(f, RETRY);
  }

  private write(f: Frame): Promise<Entry> {
    return this.client.request(f, ONCE).then((a) => entry(this.wrote(a)));
  }

  private wrote<A>(a: A): A {
    const pos = (a as Frame).pos;
    if (isAfter(pos, this.lastWrite)) this.lastWrite = pos;
    return a;
  }
}

function entry(a: Frame): Entry {
  return { value: a.value === undefined ? null : a.value, version: a.version || 0, pos: a.pos };
}
