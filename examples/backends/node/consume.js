// Reads clients' events from the roomlog topic in a consumer group with kafkajs and prints the first publish
// to ROOM: the Node.js snippet of docs/backends.md.
//   BROKERS=127.0.0.1:9092 TOPIC=roomlog.events GROUP=my-backend ROOM=lobby node consume.js
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require("kafkajs");
const SnappyCodec = require("kafkajs-snappy");

// Relays write snappy-compressed batches; kafkajs reads them with this codec.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;

async function main() {
  const kafka = new Kafka({ clientId: "my-backend", brokers: process.env.BROKERS.split(","), logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({ groupId: process.env.GROUP });
  await consumer.connect();
  await consumer.subscribe({ topic: process.env.TOPIC, fromBeginning: true });
  const timer = setTimeout(() => { console.error("no publish to the room within 60s"); process.exit(1); }, 60_000);
  await new Promise((resolve) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        const h = (k) => (message.headers[k] ? message.headers[k].toString() : "");
        if (h("rl-type") !== "publish" || String(message.key) !== process.env.ROOM) return;
        console.log(`${message.key} ${h("rl-event")} ${h("rl-user")} ${message.value}`);
        resolve();
      },
    });
  });
  clearTimeout(timer);
  await consumer.disconnect(); // commits the offsets consumed
}

main().catch((err) => { console.error(err); process.exit(1); });
