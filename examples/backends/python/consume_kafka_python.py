"""Reads clients' events from the roomlog topic in a consumer group with kafka-python and prints the first
publish to ROOM: a Python snippet of docs/backends.md.

    BROKERS=127.0.0.1:9092 TOPIC=roomlog.events GROUP=my-backend ROOM=lobby python consume_kafka_python.py
"""
import os
import sys
import time

from kafka import KafkaConsumer

consumer = KafkaConsumer(
    os.environ["TOPIC"],
    bootstrap_servers=os.environ["BROKERS"].split(","),
    group_id=os.environ["GROUP"],
    auto_offset_reset="earliest",
    enable_auto_commit=False,
)
deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for msg in records:
                headers = {k: v.decode() for k, v in msg.headers}
                if headers.get("rl-type") != "publish" or msg.key.decode() != os.environ["ROOM"]:
                    continue
                print(msg.key.decode(), headers.get("rl-event", ""), headers.get("rl-user", ""), msg.value.decode())
                consumer.commit()
                sys.exit(0)
    sys.exit("no publish to the room within 60s")
finally:
    consumer.close()
