#!/bin/sh
. "$(dirname "$0")/common.sh"
test -f "$STATE/running" || { log "not running"; exit 1; }
grep -q "sample app" "$APP/site/index.html" || { log "unexpected site content"; exit 1; }
log "healthy"
