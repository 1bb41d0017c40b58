#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# compare_bans.sh LOG
# compare_bans.sh --lists FAIL2BAN_BANS STADTWACHE_BANS
#
# Replays LOG through fail2ban 1.0.2's own library (bench/fail2ban_replay.py)
# and through `stadtwache replay`, with the same jail settings, and diffs the
# two ban lists (format: see bench/README.md). With --lists, only compares two
# ban lists made earlier (bench/run.sh uses this). Exit status: 0 identical,
# 1 different, 2 usage/tool error.
#
# Environment:
#   STADTWACHE  stadtwache binary            (default target/release/stadtwache)
#   PYTHON      interpreter with fail2ban    (default /usr/bin/python3)
#   MAXRETRY / FINDTIME / BANTIME            (defaults 5 / 10m / 10m)
#   NOW         "now" for the year of year-less timestamps, RFC 3339 (default:
#               each tool's own: fail2ban the current time for the first line,
#               stadtwache the log's modification time -- which disagree when
#               "now" falls inside the log's time span: pin it for a log whose
#               dates are not those of its writing, like stadtwache-loggen's)
#   KEEP        directory to keep both ban lists and the diff in (optional)
set -euo pipefail

lists_only=
if [[ $# -eq 3 && $1 == --lists ]]; then
    lists_only=1
elif [[ $# -ne 1 ]]; then
    echo "usage: $0 LOG | $0 --lists FAIL2BAN_BANS STADTWACHE_BANS" >&2
    exit 2
fi
log=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STADTWACHE=${STADTWACHE:-target/release/stadtwache}
PYTHON=${PYTHON:-/usr/bin/python3}
MAXRETRY=${MAXRETRY:-5}
FINDTIME=${FINDTIME:-10m}
BANTIME=${BANTIME:-10m}

if [[ -n $lists_only ]]; then
    ref=$2
    ours=$3
    for f in "$ref" "$ours"; do
        [[ -r $f ]] || { echo "compare_bans: cannot read $f" >&2; exit 2; }
    done
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
else
[[ -r $log ]] || { echo "compare_bans: cannot read $log" >&2; exit 2; }
[[ -x $STADTWACHE ]] || { echo "compare_bans: no stadtwache binary at $STADTWACHE (set STADTWACHE)" >&2; exit 2; }

if [[ -n ${KEEP:-} ]]; then
    work=$KEEP
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
ref=$work/fail2ban.bans
ours=$work/stadtwache.bans

ref_now=() ours_now=()
if [[ -n ${NOW:-} ]]; then
    epoch=$(date -u -d "$NOW" +%s) || { echo "compare_bans: bad NOW $NOW" >&2; exit 2; }
    ref_now=(--now "$epoch")
    ours_now=(--now "$NOW")
fi
"$PYTHON" "$here/fail2ban_replay.py" --filter sshd --mode normal \
    --maxretry "$MAXRETRY" --findtime "$FINDTIME" --bantime "$BANTIME" "${ref_now[@]}" \
    --out "$ref" "$log" || { echo "compare_bans: fail2ban_replay.py failed" >&2; exit 2; }

start=$(date +%s.%N)
"$STADTWACHE" replay --tz UTC "${ours_now[@]}" --filter sshd --maxretry "$MAXRETRY" --findtime "$FINDTIME" \
    --bantime "$BANTIME" --bans-out "$ours" "$log" >&2 \
    || { echo "compare_bans: stadtwache replay failed" >&2; exit 2; }
end=$(date +%s.%N)
[[ -f $ours ]] || { echo "compare_bans: stadtwache wrote no $ours" >&2; exit 2; }
echo "stadtwache replay: $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}') s wall" >&2
fi

status=0
# Both lists must be in canonical order: time numerically, then address byte-wise.
for f in "$ref" "$ours"; do
    if ! LC_ALL=C sort -c -s -k1,1n -k2,2 "$f" 2>/dev/null; then
        echo "compare_bans: $(basename "$f") is not sorted by time, then address" >&2
        status=1
    fi
    if grep -qvE '^[0-9]+ [^ ]+$' "$f"; then
        echo "compare_bans: $(basename "$f") has lines not of the form '<epoch> <address>':" >&2
        grep -m 3 -vE '^[0-9]+ [^ ]+$' "$f" >&2 || true
        status=1
    fi
done

n=$(wc -l < "$ref")
m=$(wc -l < "$ours")
diff "$ref" "$ours" > "$work/bans.diff" || true
k=$(grep -c '^[<>]' "$work/bans.diff" || true)
echo "bans: fail2ban $n, stadtwache $m, diff $k lines"
if [[ $k -ne 0 ]]; then
    echo "first differences (< fail2ban only, > stadtwache only):" >&2
    grep -m 20 '^[<>]' "$work/bans.diff" >&2 || true
    status=1
fi
exit $status
