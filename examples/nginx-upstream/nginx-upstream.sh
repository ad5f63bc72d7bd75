#!/bin/sh
# A fleetmesh route command (`fleetmesh traffic create-route ... --command PATH`):
# reads the route's JSON on stdin (as `fleetmesh traffic get-route --json` prints it),
# writes an nginx `upstream` block named after the route, and reloads nginx when it
# runs here. Serving targets with a weight above 0 get that weight; draining, blocked
# and zero-weight targets are left out (nginx lets open connections finish).
#
# Environment:
#   FLEETMESH_NGINX_UPSTREAM_DIR  where to write <route>.conf (default /etc/nginx/conf.d)
#   FLEETMESH_NGINX_RELOAD        the reload command (default: `nginx -s reload` when
#                                 nginx is installed; set it to `true` to skip)
# Needs jq. Exits non-zero (and fleetmesh logs the output) when the JSON is unusable or
# nginx refuses the configuration.
set -eu

dir="${FLEETMESH_NGINX_UPSTREAM_DIR:-/etc/nginx/conf.d}"
route_json="$(cat)"
name="$(printf '%s' "$route_json" | jq -er '.routeName')"
case "$name" in
  *[!A-Za-z0-9._+=,@-]*) echo "unexpected route name: $name" >&2; exit 2 ;;
esac

conf="$dir/fleetmesh-$name.conf"
tmp="$conf.tmp.$$"
{
  echo "# written by fleetmesh's nginx-upstream.sh for route $name; do not edit"
  echo "upstream fleetmesh_$name {"
  servers="$(printf '%s' "$route_json" | jq -r '
      .targets[]
      | select(.state == "serving" and .weight > 0 and .address != "")
      | "    server \(.address) weight=\(.weight);"')"
  if [ -n "$servers" ]; then
    printf '%s\n' "$servers"
  else
    # nginx needs one server per upstream; this one refuses every connection.
    echo "    server 127.0.0.1:1 down;"
  fi
  echo "}"
} > "$tmp"
mv "$tmp" "$conf"
echo "wrote $conf"

if [ -n "${FLEETMESH_NGINX_RELOAD:-}" ]; then
  sh -c "$FLEETMESH_NGINX_RELOAD"
elif command -v nginx >/dev/null 2>&1; then
  nginx -t && nginx -s reload
fi
