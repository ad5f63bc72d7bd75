#!/bin/sh
. "$(dirname "$0")/common.sh"
if [ -f "$STATE/running" ]; then
  rm -f "$STATE/running"
  log "stopped version $(cat "$APP/VERSION" 2>/dev/null || echo unknown)"
else
  log "was not running"
fi
