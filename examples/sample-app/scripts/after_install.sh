#!/bin/sh
. "$(dirname "$0")/common.sh"
test -f "$APP/site/index.html" || { log "index.html was not installed"; exit 1; }
log "installed version $(cat "$APP/VERSION")"
