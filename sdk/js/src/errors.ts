/** The stable codes of the relay's error frames (docs/protocol.md), plus the client's own. */
export type ErrorCode =
  | "bad_request"
  | "unknown_op"
  | "invalid_room"
  | "invalid_event"
  | "invalid_id"
  | "invalid_key"
  | "invalid_value"
  | "value_too_large"
  | "not_joined"
  | "too_many_rooms"
  | "bad_position"
  | "stale_position"
  | "conflict"
  | "not_integer"
  | "overflow"
  | "state_full"
  | "relay_restarted"
  | "timeout"
  | "log_unavailable"
  | "shutting_down"
  | "unauthorized"
  | "forbidden"
  | "rate_limited"
  // From close codes.
  | "going_away" // 1001
  | "unsupported_data" // 1003
  | "connection_lost" // 1006 and others: no close frame
  | "message_too_big" // 1009, or refused by the client before sending
  | "slow_client" // 4001
  | "session_ended" // 4002
  | "token_expired" // 4003
  | "idle" // 4009
  | "revoked" // 4010: the token was revoked; the next connection asks getToken() for a new one
  | "server_disconnect" // 4011: the backend disconnected this user; the client closes for good
  | "too_many_connections" // 4012: the user holds the most connections allowed on the relay
  // The client's own.
  | "heartbeat_timeout" // nothing heard from the relay within the heartbeat window
  | "connect_timeout" // no welcome (and auth ack) within connectTimeout
  | "offline" // the browser went offline
  | "token_error" // getToken() failed
  | "disconnected" // the link dropped before the ack of an op that is not retried; it may or may not have taken effect
  | "queue_full" // the offline queue is full
  | "queue_timeout" // the op waited in the offline queue longer than queue.maxAge
  | "closed"; // the client was closed

/** Every rejected promise and error event carries a RoomlogError: branch on `code`, never on `message`. */
export class RoomlogError extends Error {
  /** The relay's error code, or the client's own (see ErrorCode). */
  readonly code: ErrorCode;
  /** The WebSocket close code, for errors that ended a connection. */
  readonly closeCode?: number;
  /** State ops refused by the fold (conflict, not_integer, ...): the key's current value and version. */
  readonly value?: unknown;
  readonly version?: number;

  constructor(code: ErrorCode, message: string, extra?: { closeCode?: number; value?: unknown; version?: number }) {
    super(message || code);
    this.name = "RoomlogError";
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

const closeCodes: Record<number, ErrorCode> = {
  1001: "going_away",
  1003: "unsupported_data",
  1009: "message_too_big",
  4001: "slow_client",
  4002: "session_ended",
  4003: "token_expired",
  4004: "unauthorized",
  4008: "rate_limited",
  4009: "idle",
  4010: "revoked",
  4011: "server_disconnect",
  4012: "too_many_connections",
};

/** The typed error for a WebSocket close code. */
export function closeError(code: number, reason: string): RoomlogError {
  return new RoomlogError(closeCodes[code] || "connection_lost", reason || "connection closed (" + code + ")", {
    closeCode: code,
  });
}
