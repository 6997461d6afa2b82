import type { RoomlogError } from "./errors.js";

/** A record's place in the log (`partition-offset-epoch`). Opaque: keep the last one to resume from. */
export type Position = string;

/** What the client needs of a WebSocket: the browser's, or the `ws` package's in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** One relay URL (`wss://host/ws`) or several, tried in turn. */
  url: string | string[];
  /** Called before every connection and before the token expires; a refresh goes in-band (the `auth` op). */
  getToken?: () => string | Promise<string>;
  /** Refresh the token before it expires (default true). */
  refreshToken?: boolean;
  /** The WebSocket implementation (default: globalThis.WebSocket; in Node, pass the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays: full jitter between 0 and min(max, min·2^attempt) ms (default 500 and 15000). */
  reconnect?: { min?: number; max?: number };
  /** A connection that has not been welcomed (and authenticated) within this many ms is dropped (default 10000). */
  connectTimeout?: number;
  /** Send `ping` when nothing was heard for `interval` ms; reconnect when nothing was heard for `timeout` ms
   * (default 10000 and 25000). false: no heartbeat. */
  heartbeat?: { interval?: number; timeout?: number } | false;
  /** Ops waiting for a connection: at most `max` (default 1000), each at most `maxAge` ms (default 60000). */
  queue?: { max?: number; maxAge?: number };
  /** Frames over this many bytes are refused before sending (default 65536, the relay's --max-message-bytes). */
  maxMessageBytes?: number;
}

export type ConnectionState = "disconnected" | "connecting" | "connected" | "closed";

export interface Member {
  conn: string;
  user?: string;
  relay: string;
  joined_at: number;
}

export interface Message<T = unknown> {
  room: string;
  event: string;
  data: T;
  from?: string;
  user?: string;
  pos: Position;
}

export interface StateChange {
  room: string;
  key: string;
  action: "set" | "del" | "incr" | "cas";
  value: unknown;
  version: number;
  from?: string;
  pos: Position;
}

export interface PublishAck {
  pos: Position;
  /** A retry of a message the log already had: delivered once, this ack names the original. */
  duplicate: boolean;
  mid: string;
}

export interface Entry {
  value: unknown;
  /** The log offset of the record that last wrote the key; 0 when absent. */
  version: number;
  pos: Position;
}

export interface HistoryPage {
  messages: Message[];
  more: boolean;
}

export interface ClientEvents {
  state: { state: ConnectionState; previous: ConnectionState; attempt: number };
  connected: { url: string; conn: string; relay: string; user?: string };
  disconnected: { url: string; code: number; reason: string; error: RoomlogError };
  /** A token was accepted (first auth or refresh). `exp` in Unix seconds. */
  auth: { user?: string; exp?: number; refresh: boolean };
  /** Errors that belong to no call: a failed token refresh, an error frame without an id. */
  error: RoomlogError;
}

export interface RoomEvents {
  message: Message;
  state: StateChange;
  joined: { member: Member; pos: Position };
  left: { member: Member; reason: string; pos: Position };
  /** The relay folded the join: live from here. `resumed`: joined with `since` (backlog delivered first). */
  subscribed: { pos?: Position; resumed: boolean; recovered?: boolean };
  /** Messages may be missing (recovered:false, or the position is from another incarnation of the log):
   * resync with get() and history(). */
  gap: { reason: "not_recovered" | "stale_position" | "bad_position"; since: Position };
  /** The join was refused (forbidden, invalid_room, ...); the room stays left. */
  error: RoomlogError;
  /** The relay took this connection out of the room: `removed` (the backend's /api/remove) or `forbidden` (a
   * refreshed token no longer allows the room). The room stays left until join() is called again. */
  removed: { reason: string; pos?: Position };
}
