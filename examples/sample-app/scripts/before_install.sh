#!/bin/sh
. "$(dirname "$0")/common.sh"
log "preparing to install (application $APPLICATION_NAME, group $DEPLOYMENT_GROUP_NAME)"
