#!/usr/bin/env bash
# 100,000 bans through the live daemon, then a restart that restores them
# (run as root).
#
# In a network namespace of its own: a log of N failure lines, each from a
# new address (maxretry 1: every line is a ban), is written before the
# daemon starts. Measures
#   1. start → all N addresses in our nft set (detection, N decisions
#      committed, enforcement: the daemon's whole path);
#   2. stop, `nft delete table inet stadtwache` (a reboot loses the kernel
#      state), start again → all N back in the set (store → reconcile);
#   3. the same with the table kept (restart of the daemon only).
#
# Usage: bench/daemon_restore.sh [--bans N] [path/to/stadtwache]
set -euo pipefail
N=100000
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bans) N=$2; shift 2 ;;
    *) BIN=$1; shift ;;
  esac
done
cd "$(dirname "$0")/.."
if [ -z "$BIN" ]; then
  cargo build --release -q -p stadtwache
  BIN=${CARGO_TARGET_DIR:-target}/release/stadtwache
fi
BIN=$(readlink -f "$BIN")
NS=sw-rst-$$
W=$(mktemp -d /tmp/stadtwache-rst.XXXXXX)
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
  sleep 0.5
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

python3 - "$W/auth.log" "$N" <<'EOF'
import sys, time
path, n = sys.argv[1], int(sys.argv[2])
stamp = time.strftime("%b %d %H:%M:%S")
with open(path, "w") as f:
    for i in range(n):
        a = "10.%d.%d.%d" % (100 + i // 65536, (i // 256) % 256, i % 256)
        f.write("%s bench sshd[%d]: Invalid user u%d from %s port %d\n" % (stamp, 1000 + i % 30000, i, a, 1024 + i % 60000))
EOF
cat > "$W/stadtwache.toml" <<EOF
[daemon]
data_dir = "$W/data"
[policy]
maxretry = 1
bantime = "1d"
max_keys = 200000
[[source]]
name = "sshd"
type = "file"
paths = ["$W/auth.log"]
filters = ["sshd"]
[nftables]
enabled = true
reconcile_interval = "1h"
[api]
listen = "127.0.0.1:8089"
EOF

count() { ip netns exec "$NS" nft -j list set inet stadtwache v4 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print(0); sys.exit()
n = 0
for o in d.get("nftables", []):
    s = o.get("set")
    if s: n += len(s.get("elem", []))
print(n)'; }
run_until_full() { # label
  local t0 t1
  t0=$(date +%s.%N)
  ip netns exec "$NS" "$BIN" run --config "$W/stadtwache.toml" 2>>"$W/daemon.log" &
  DPID=$!
  while :; do
    c=$(count || true); c=${c:-0}
    [ "$c" -ge "$N" ] && break
    sleep 0.2
  done
  t1=$(date +%s.%N)
  printf "%-58s %8.2f s  (%s elements)\n" "$1" "$(python3 -c "print($t1 - $t0)")" "$c"
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; }

echo "bans: $N (one failure line each, maxretry 1), daemon $BIN"
run_until_full "1. start → all addresses banned (log → store → nft)"
stop
ip netns exec "$NS" nft delete table inet stadtwache
run_until_full "2. table deleted, restart → restored from the store"
stop
run_until_full "3. restart, table kept → all in the set"
stop
echo "note: the time to list the set to check it (nft -j, ~1 s per 100k) is included in each figure"
echo "the daemon's own account (start-up reconciliation: read from SQLite, then nft):"
grep -E "stored decision|drift|error" "$W/daemon.log" | sed 's/^/  /' | tail -8
