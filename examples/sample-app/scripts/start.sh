#!/bin/sh
. "$(dirname "$0")/common.sh"
cat "$APP/VERSION" > "$STATE/running"
log "started version $(cat "$APP/VERSION")"
