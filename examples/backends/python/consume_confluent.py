"""Reads clients' events from the roomlog topic in a consumer group with confluent-kafka and prints the first
publish to ROOM: a Python snippet of docs/backends.md.

    BROKERS=127.0.0.1:9092 TOPIC=roomlog.events GROUP=my-backend ROOM=lobby python consume_confluent.py
"""
import os
import sys
import time

from confluent_kafka import Consumer

consumer = Consumer({
    "bootstrap.servers": os.environ["BROKERS"],
    "group.id": os.environ["GROUP"],
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([os.environ["TOPIC"]])
deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print(f"consume: {msg.error()}", file=sys.stderr)
            continue
        headers = {k: v.decode() for k, v in (msg.headers() or [])}
        if headers.get("rl-type") != "publish" or msg.key().decode() != os.environ["ROOM"]:
            continue
        print(msg.key().decode(), headers.get("rl-event", ""), headers.get("rl-user", ""), msg.value().decode())
        consumer.commit(msg, asynchronous=False)
        sys.exit(0)
    sys.exit("no publish to the room within 60s")
finally:
    consumer.close()
