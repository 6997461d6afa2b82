// Appends one event to a roomlog room with kafkajs: the Node.js snippet of docs/backends.md.
//   BROKERS=127.0.0.1:9092 TOPIC=roomlog.events ROOM=lobby TEXT=hi node publish.js
const { Kafka, Partitioners } = require("kafkajs");

async function main() {
  const kafka = new Kafka({ clientId: "my-backend", brokers: process.env.BROKERS.split(",") });
  // kafkajs 2's DefaultPartitioner is Java's (murmur2): the record goes straight to the room's partition.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const [md] = await producer.send({
    topic: process.env.TOPIC,
    acks: -1,
    messages: [{
      key: process.env.ROOM, // key = room
      value: JSON.stringify({ text: process.env.TEXT }), // value = the event's data (JSON)
      headers: { "rl-type": "publish", "rl-event": "chat" },
    }],
  });
  console.error(`appended to partition ${md.partition} at offset ${md.baseOffset}`);
  await producer.disconnect();
}

main().catch((err) => { console.error(err); process.exit(1); });
