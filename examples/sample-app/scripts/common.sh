#!/bin/sh
# Shared by the hooks: where this host's app lives and where hooks log.
ROOT="${FLEETMESH_INSTALL_ROOT:-}"
case "$ROOT" in */) ROOT="${ROOT%/}" ;; esac
APP="$ROOT/srv/sample-app"
STATE="$ROOT/var/lib/sample-app"
mkdir -p "$STATE"
log() { echo "$(date -u +%H:%M:%S) $LIFECYCLE_EVENT $DEPLOYMENT_ID node ${FLEETMESH_NODE_ID:-?}: $*" >> "$STATE/events.log"; echo "$*"; }
