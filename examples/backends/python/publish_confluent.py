"""Appends one event to a roomlog room with confluent-kafka: a Python snippet of docs/backends.md.

    BROKERS=127.0.0.1:9092 TOPIC=roomlog.events ROOM=lobby TEXT=hi python publish_confluent.py
"""
import json
import os
import sys

from confluent_kafka import Producer

producer = Producer({
    "bootstrap.servers": os.environ["BROKERS"],
    "acks": "all",
    # librdkafka's default partitioner (consistent_random, CRC32) is not Kafka's: murmur2_random puts the
    # record straight into the room's partition. (Without it the record is re-homed: one more append.)
    "partitioner": os.environ.get("PARTITIONER", "murmur2_random"),
})
delivered = []
producer.produce(
    os.environ["TOPIC"],
    key=os.environ["ROOM"],  # key = room
    value=json.dumps({"text": os.environ["TEXT"]}),  # value = the event's data (JSON)
    headers=[("rl-type", "publish"), ("rl-event", "chat")],
    on_delivery=lambda err, msg: delivered.append((err, msg)),
)
producer.flush(30)
err, msg = delivered[0] if delivered else ("not delivered within 30s", None)
if err is not None:
    sys.exit(f"produce: {err}")
print(f"appended to partition {msg.partition()} at offset {msg.offset()}", file=sys.stderr)
