#!/bin/sh
# Org B's task code looks for org A's data: its markers in any file or
# process it can read, its state through the API without a key and through
# this step's own state route (the runner's proxy, which holds org B's
# credential). Prints FOUND: ... for each hit, OK: ... for what must work.
found() { echo "FOUND: $*"; }
echo "TENANCY-START"
pat=/tmp/tenancy-patterns
: > "$pat"
for h in $MARK_HALVES; do
  printf '%s%s\n' "${h%%:*}" "${h#*:}" >> "$pat"
done
[ -s "$pat" ] && echo "OK: $(wc -l < "$pat") markers to look for"

# Every file it can read: first where org A's work dirs are on the host
# (dev's data dir), then everything outside /proc, /sys, /dev and /usr (the
# host's, read-only), which a sandbox keeps small (bounded: without one it
# is the host's whole disk)...
{
  grep -rlF -f "$pat" "$DATA_DIR" 2>/dev/null
  timeout 60 grep -rlF -f "$pat" --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=usr / 2>/dev/null
} | sort -u | while read -r f; do [ "$f" = "$pat" ] || found "org A's marker in $f"; done
# ...and every process's environment and command line.
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
  grep -qF -f "$pat" "$f" 2>/dev/null && found "org A's marker in $f"
done

if command -v curl >/dev/null 2>&1; then
  # Org A's state on the API's state backend, without a key.
  code=$(curl -s -o /tmp/api-state -w '%{http_code}' "$API/api/v1/state/default/$VICTIM_WS")
  [ "$code" = 200 ] && found "org A's state through the API: $code"
  grep -qF -f "$pat" /tmp/api-state && found "org A's marker from the API"
  # This step's own route on the runner's state proxy answers (the route
  # is real), and leads to org B's workspace of the same name only.
  if [ -n "$TF_HTTP_ADDRESS" ]; then
    code=$(curl -s -o /tmp/own-state -w '%{http_code}' "$TF_HTTP_ADDRESS")
    case "$code" in 200|204) echo "OK: own state route answers $code" ;; *) echo "own state route: $code" ;; esac
    grep -qF -f "$pat" /tmp/own-state && found "org A's marker in the own state route's answer"
    base=${TF_HTTP_ADDRESS%/s/*}
    for path in "$TF_HTTP_ADDRESS/../../../api/v1/state/default/$VICTIM_WS" \
      "$TF_HTTP_ADDRESS/lock/../../default/$VICTIM_WS" \
      "$TF_HTTP_ADDRESS/%2e%2e/%2e%2e/default/$VICTIM_WS" \
      "$base/api/v1/state/default/$VICTIM_WS" \
      "$TF_HTTP_ADDRESS?x=1&/../default/$VICTIM_WS"; do
      code=$(curl -s --path-as-is -o /tmp/proxied -w '%{http_code}' "$path")
      grep -qF -f "$pat" /tmp/proxied && found "org A's marker through the state proxy at $path ($code)"
    done
  else
    echo "no TF_HTTP_ADDRESS"
  fi
else
  echo "no curl: the state routes were not probed"
fi
echo "TENANCY-END"
