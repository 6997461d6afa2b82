#!/bin/sh
# Appends one event to a roomlog room with kcat: the kcat snippet of docs/backends.md.
#   BROKERS=127.0.0.1:9092 TOPIC=roomlog.events ROOM=lobby TEXT=hi kcat/publish.sh
# kcat is librdkafka: its default partitioner (consistent_random, CRC32) is not Kafka's murmur2, so ask for
# murmur2_random to append straight to the room's partition (without it the record is re-homed).
set -eu
printf '%s\t{"text":"%s"}\n' "$ROOM" "$TEXT" |
  kcat -P -b "$BROKERS" -t "$TOPIC" -K '\t' -X "topic.partitioner=${PARTITIONER:-murmur2_random}" \
    -H rl-type=publish -H rl-event=chat
