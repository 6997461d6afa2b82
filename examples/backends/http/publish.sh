#!/bin/sh
# Appends one event to a roomlog room through a relay's backend HTTP API (no Kafka access needed): the HTTP
# snippet of docs/backends.md. The relay needs --api-key-file; the answer carries the record's position.
#   RELAY=http://127.0.0.1:8080 API_KEY=... ROOM=lobby TEXT=hi http/publish.sh
set -eu
body=$(printf '{"room":"%s","event":"chat","data":{"text":"%s"}}' "$ROOM" "$TEXT")
curl -sS --fail-with-body -X POST "$RELAY/api/publish" \
  -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d "$body"
