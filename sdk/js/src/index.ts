/**
 * roomlog: the client for roomlog relays. See README.md.
 *
 *   const client = new Client({ url: ["wss://a.example/ws", "wss://b.example/ws"], getToken }).connect();
 *   const room = client.room("lobby", { presence: true });
 *   room.on("message", (m) => render(m));
 *   await room.join();
 *   await room.publish({ text: "hi" }, { event: "chat" });
 */
export { Client } from "./client.js";
export { Room, type RoomOptions } from "./room.js";
export { RoomlogError, type ErrorCode } from "./errors.js";
export { partitionOf } from "./partition.js";
export type * from "./types.js";
