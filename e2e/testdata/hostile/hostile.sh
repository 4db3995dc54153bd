#!/bin/sh
# Prints FOUND: ... for everything it reaches that task code must not, and
# OK: ... for what it must reach (so a probe that silently ran nothing fails).
found() { echo "FOUND: $*"; }
echo "PROBE-START"
[ -n "$OWN_SECRET" ] && echo "OK: own env secret"
echo mine > ./own-write && echo "OK: work dir writable"
echo mine > /tmp/own-tmp && echo "OK: private tmp writable"

# The data dir's keys, stores and other tasks, by their known paths...
for f in "$DATA_DIR/secret.key" "$DATA_DIR/api-key" "$DATA_DIR/terratask.db" "$DATA_DIR/temporal.db" "$DATA_DIR/keys.yaml"; do
  [ -r "$f" ] && found "readable $f"
done
for d in "$DATA_DIR"/runners/*/work/*; do
  case "$d" in *"$TERRATASK_TASK_ID"*) ;; *) [ -e "$d" ] && found "other work dir $d" ;; esac
done
# ...by walking up from the work dir...
d=$(pwd)
while [ "$d" != / ]; do
  d=$(dirname "$d")
  for f in "$d"/* "$d"/.[!.]*; do
    case "$f" in *secret.key|*api-key|*.db|*keys.yaml|*.pem|*.crt) [ -e "$f" ] && found "walked to $f" ;; esac
  done
done
# ...and by searching the whole file system.
find / \( -path /proc -o -path /sys -o -path /usr -o -path /dev \) -prune -o \
  \( -name '*.tfplan' -o -name 'secret.key' -o -name 'api-key' -o -name '*.db' -o -name 'errored.tfstate' \) -print 2>/dev/null |
  while read -r f; do case "$f" in *"$TERRATASK_TASK_ID"*) ;; *) found "file $f" ;; esac; done
find / \( -path /proc -o -path /sys \) -prune -o -type s -print 2>/dev/null | while read -r f; do found "unix socket $f"; done

# Other processes: their environment (other tasks' env, the runner's keys),
# their memory, their command lines.
n=0
for p in /proc/[0-9]*; do
  n=$((n+1))
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -q -e '^VICTIM_SECRET=' -e '^TERRATASK_API_KEY=' -e '^TERRATASK_SECRET_KEY=' -e '^PGPASSWORD='; then
    found "secret environment in $p"
  fi
  if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -e ' dev --data-dir' -e 'victim-sleeper' -e 'terratask runner'; then
    found "process $p: $(tr '\0' ' ' < "$p/cmdline")"
  fi
done
echo "OK: sees $n processes"
[ "$n" -gt 10 ] && found "$n processes visible"
head -c 16 /proc/1/mem >/dev/null 2>&1 && found "read /proc/1/mem"

# Writes outside: the host's /tmp and the data dir (the test looks for them
# on the host afterwards), /usr.
echo "$MARK" > "/tmp/terratask-e2e-$MARK"
touch /usr/terratask-e2e-x 2>/dev/null && found "wrote /usr"
touch "$DATA_DIR/terratask-e2e-$MARK" 2>/dev/null

# Privileges.
grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status || found "capabilities $(grep CapEff /proc/self/status)"

# A process that tries to outlive the task: a session and process group of
# its own, and none of the environment that marks the step's processes.
(setsid env -i sh -c "sleep 600; : terratask-e2e-orphan-$MARK" </dev/null >/dev/null 2>&1 &)
echo "PROBE-END"
