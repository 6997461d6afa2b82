// The chat's server-side logic on roomlog: a backend that reads the clients' events from the log with a Kafka
// consumer group (kafkajs) and answers through the relay's backend API (POST /api/publish). It holds no socket
// and no session: run one or several (the group shares the partitions), restart it at will (the group resumes
// from its committed offsets).
//
// Records (docs/protocol.md): key = room, value = the event's data (JSON), headers rl-type (publish), rl-event
// (chat), rl-from (the sender's connection id; "<relay session>/api" for what backends publish, so the backend
// skips its own answers).
//
// The logic is the original's (lib/logic.mjs), with one difference: by the time the backend reads a message it is
// in the log and delivered, so the filter cannot refuse it. It publishes a "moderation" event naming the message
// ({id, from, reason}) and the pages strike it out.
//
// Answers carry a message id derived from the record's partition and offset: if the backend dies after answering
// and before committing, the record is read again and the relay drops the repeated answer (dedupe window, 5
// minutes).
//
// Env: BROKERS (127.0.0.1:9092), TOPIC (roomlog.events), RELAY_URL (http://127.0.0.1:8080), API_KEY_FILE (required),
// GROUP (socketio-chat-backend), START (earliest: a new group starts at the log's start; latest: at its end).
import { readFileSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";
import { answer, botName, invalidChat, refusal } from "../lib/logic.mjs";

const brokers = (process.env.BROKERS || "127.0.0.1:9092").split(",");
const topic = process.env.TOPIC || "roomlog.events";
const relay = (process.env.RELAY_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const group = process.env.GROUP || "socketio-chat-backend";
if (!process.env.API_KEY_FILE) throw new Error("API_KEY_FILE is required: a file with the relay's --api-key-file key");
const apiKey = readFileSync(process.env.API_KEY_FILE, "utf8").split("\n").map((l) => l.trim()).find((l) => l && !l.startsWith("#"));
if (!apiKey) throw new Error(process.env.API_KEY_FILE + ": no key");

/** POST /api/publish, retried with backoff while the relay is unavailable; throws after the last attempt (kafkajs
 * then retries the record). */
async function publish(body) {
  let wait = 200;
  for (let attempt = 1; ; attempt++) {
    let status, text;
    try {
      const res = await fetch(relay + "/api/publish", {
        method: "POST",
        headers: { authorization: "Bearer " + apiKey, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(15000),
      });
      status = res.status;
      text = await res.text();
      if (res.ok) return JSON.parse(text);
      if (status !== 503 && status !== 504) throw Object.assign(new Error(`/api/publish ${status}: ${text}`), { permanent: true });
    } catch (e) {
      if (e.permanent) throw e;
      text = e.message;
    }
    if (attempt === 6) throw new Error(`/api/publish failed ${attempt} times, last: ${status ?? ""} ${text}`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 5000);
  }
}

/** What the backend does with one record of the log. */
async function handle(partition, message) {
  const header = (name) => message.headers?.[name]?.toString();
  if (header("rl-type") !== "publish" || header("rl-event") !== "chat" || !message.key) return;
  const from = header("rl-from") || "";
  if (from.includes("/")) return; // published through the API (our own answers, or another backend's)
  let data;
  try {
    data = JSON.parse(message.value.toString());
  } catch {
    return;
  }
  if (invalidChat(data)) return;
  const room = message.key.toString();
  const ref = partition + "-" + message.offset;
  const refused = refusal(data.text);
  if (refused) {
    await publish({ room, event: "moderation", data: { id: String(data.id ?? ""), from, reason: refused }, mid: "mod-" + ref });
    console.log(`backend: ${room}: removed ${from}'s message (${refused})`);
    return;
  }
  const reply = answer(data.text, data.user);
  if (reply) {
    const { pos } = await publish({ room, event: "chat", data: { user: botName, text: reply }, mid: "bot-" + ref });
    console.log(`backend: ${room}: answered ${data.text.split(/\s/)[0]} at ${pos}`);
  }
}

const kafka = new Kafka({ clientId: "socketio-chat-backend", brokers, logLevel: logLevel.WARN });
const consumer = kafka.consumer({ groupId: group });
consumer.on(consumer.events.GROUP_JOIN, (e) =>
  console.log(`backend: ready (group ${group}, topic ${topic}, partitions ${JSON.stringify(e.payload.memberAssignment[topic] ?? [])})`),
);
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: (process.env.START || "earliest") === "earliest" });
await consumer.run({ eachMessage: ({ partition, message }) => handle(partition, message) });

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await consumer.disconnect().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
