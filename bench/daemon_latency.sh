#!/usr/bin/env bash
# Detection-to-enforcement latency of the live daemon (run as root).
#
# In a network namespace of its own, `stadtwache run` follows a log file with
# fail2ban's sshd filter (maxretry 1: every failure line is a ban) and
# nftables enabled. A writer appends N failure lines, each from a new
# address, one every INTERVAL seconds; `nft monitor` (in the same namespace)
# timestamps the moment each address enters our set. Latency = kernel event
# time - write time, both on the same monotonic clock. Prints p50/p90/p99/max,
# and the daemon's own histogram (line read → set) from /metrics.
#
# Usage: bench/daemon_latency.sh [--bans N] [--interval SECONDS] [path/to/stadtwache]
set -euo pipefail
N=1000
INTERVAL=0.01
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bans) N=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    *) BIN=$1; shift ;;
  esac
done
cd "$(dirname "$0")/.."
if [ -z "$BIN" ]; then
  cargo build --release -q -p stadtwache
  BIN=${CARGO_TARGET_DIR:-target}/release/stadtwache
fi
BIN=$(readlink -f "$BIN")
NS=sw-lat-$$
W=$(mktemp -d /tmp/stadtwache-lat.XXXXXX)
cleanup() {
  ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
  sleep 0.3
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
: > "$W/auth.log"
cat > "$W/stadtwache.toml" <<EOF
[daemon]
data_dir = "$W/data"
commit_interval = "5ms"
[policy]
maxretry = 1
bantime = "1h"
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
ip netns exec "$NS" "$BIN" run --config "$W/stadtwache.toml" 2>"$W/daemon.log" &
for _ in $(seq 300); do
  ip netns exec "$NS" nft list table inet stadtwache >/dev/null 2>&1 \
    && ip netns exec "$NS" curl -s -o /dev/null http://127.0.0.1:8089/health && break
  sleep 0.1
done

python3 - "$NS" "$W/auth.log" "$N" "$INTERVAL" <<'EOF'
import subprocess, sys, threading, time

ns, log, n, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
seen = {}
mon = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "elements"],
                       stdout=subprocess.PIPE, text=True, bufsize=1)

def reader():
    for line in mon.stdout:
        t = time.monotonic()
        if not line.startswith("add element"):
            continue
        body = line[line.find("{") + 1: line.rfind("}")]
        for el in body.split(","):
            addr = el.strip().split(" ")[0]
            seen.setdefault(addr, t)

threading.Thread(target=reader, daemon=True).start()
time.sleep(0.5)
written = {}
with open(log, "a", buffering=1) as f:
    for i in range(n):
        addr = "198.18.%d.%d" % (i // 250, i % 250 + 1)
        stamp = time.strftime("%b %d %H:%M:%S")
        line = "%s bench sshd[%d]: Invalid user u%d from %s port %d\n" % (stamp, 1000 + i, i, addr, 40000 + i)
        t0 = time.monotonic()
        f.write(line)
        f.flush()
        written[addr] = t0
        time.sleep(interval)
deadline = time.monotonic() + 30
while len([a for a in written if a in seen]) < n and time.monotonic() < deadline:
    time.sleep(0.05)
mon.terminate()
lat = sorted((seen[a] - t) * 1000 for a, t in written.items() if a in seen)
missing = n - len(lat)
def pct(p):
    return lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))] if lat else float("nan")
print("bans written: %d, seen in the nft set: %d, missing: %d" % (n, len(lat), missing))
print("line written -> address in nft set (ms): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f"
      % (pct(0.5), pct(0.9), pct(0.99), lat[-1] if lat else float("nan")))
sys.exit(1 if missing else 0)
EOF
rc=$?
echo "daemon's own histogram (line read -> set), stadtwache_detect_to_enforce_seconds:"
ip netns exec "$NS" curl -s http://127.0.0.1:8089/metrics | grep -E '^stadtwache_detect_to_enforce_seconds_(bucket|count)' | sed 's/^/  /'
exit $rc
