#!/bin/sh
. "$(dirname "$0")/common.sh"
# A second of start-up, so the demo shows the waves go by one host at a time.
sleep 1
cat "$APP/VERSION" > "$STATE/running"
log "started version $(cat "$APP/VERSION")"
