import type { PublishAck } from "./types.js";

/** @internal A frame as sent or received. */
export type Frame = { [field: string]: any };

// What happens to a pending op when its connection drops.
/** @internal publish and reads: sent again on the next connection (publishes keep their mid). */
export const RETRY = 0;
/** @internal state writes and leave: rejected with `disconnected` (they may or may not have taken effect). */
export const ONCE = 1;
/** @internal join and auth: they belong to one connection and end with it. */
export const CONN = 2;

/**
 * @internal What a Room needs of the client that made it: Client, checked
 * where it makes a room (new Room(this, ...)). A room depends on this, not on
 * Client, so the two modules do not import each other.
 */
export interface RoomHost {
  publish(room: string, data: unknown, options?: { event?: string; mid?: string }): Promise<PublishAck>;
  request(frame: Frame, kind: number): Promise<Frame>;
  later(retries: number, fn: () => void): void;
  isReady(): boolean;
}
