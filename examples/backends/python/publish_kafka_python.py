"""Appends one event to a roomlog room with kafka-python: a Python snippet of docs/backends.md.

    BROKERS=127.0.0.1:9092 TOPIC=roomlog.events ROOM=lobby TEXT=hi python publish_kafka_python.py
"""
import json
import os
import sys

from kafka import KafkaProducer

# kafka-python's default partitioner is Java's (murmur2): the record goes straight to the room's partition.
producer = KafkaProducer(bootstrap_servers=os.environ["BROKERS"].split(","), acks="all")
md = producer.send(
    os.environ["TOPIC"],
    key=os.environ["ROOM"].encode(),  # key = room
    value=json.dumps({"text": os.environ["TEXT"]}).encode(),  # value = the event's data (JSON)
    headers=[("rl-type", b"publish"), ("rl-event", b"chat")],
).get(timeout=30)
producer.close()
print(f"appended to partition {md.partition} at offset {md.offset}", file=sys.stderr)
