#!/bin/sh
# Reads clients' events from the roomlog topic in a consumer group with kcat (-G), up to the end of the log
# (-e), and prints the first publish to ROOM: the kcat snippet of docs/backends.md. kcat prints every record
# as "key<TAB>headers<TAB>value"; awk keeps the room's publishes.
#   BROKERS=127.0.0.1:9092 TOPIC=roomlog.events GROUP=my-backend ROOM=lobby kcat/consume.sh
set -eu
timeout 60 kcat -b "$BROKERS" -G "$GROUP" -e -X auto.offset.reset=earliest -f '%k\t%h\t%s\n' -u "$TOPIC" 2>/dev/null |
  awk -F '\t' -v room="$ROOM" '$1 == room && $2 ~ /(^|,)rl-type=publish(,|$)/ {
    event = ""; n = split($2, hs, ",")
    for (i = 1; i <= n; i++) if (hs[i] ~ /^rl-event=/) event = substr(hs[i], 10)
    if (!found) print $1, event, "", $3; found = 1
  } END { exit !found }'
