#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
# measure.sh BIN [RUNS]: min CPU (user+sys) of the 1M sshd replay; bans and --json must equal the refs.
set -u
BIN=$1; RUNS=${2:-5}; K=${SPEEDKIT:-/work/speedkit}; T=$(mktemp -d)
args=(replay --tz UTC --filter sshd --maxretry 5 --findtime 10m --bantime 10m --no-progress)
cat $K/sshd-1m.log > /dev/null
best=99; all=""
for i in $(seq "$RUNS"); do
  /usr/bin/time -f "%U %S %M" -o $T/t "$BIN" "${args[@]}" --bans-out $T/bans $K/sshd-1m.log > $T/out 2>$T/err || { echo "FAIL rc"; cat $T/err | tail -3; exit 1; }
  read u s m < $T/t; c=$(echo "$u + $s" | bc); all="$all $c(u$u,s$s)"
  if (( $(echo "$c < $best" | bc) )); then best=$c; fi
done
"$BIN" "${args[@]}" --json --bans-out $T/bans2 $K/sshd-1m.log 2>/dev/null | sed "s/\"seconds\":[0-9.e+-]*//" > $T/json
b1=$(md5sum < $T/bans | cut -c1-12); j1=$(md5sum < $T/json | cut -c1-12)
rb=$(cat $K/ref.bans.md5); rj=$(cat $K/ref.json.md5)
echo "min CPU $best s  runs:$all  rss ${m}KB  bans $([[ $b1 == $rb ]] && echo SAME || echo DIFF) json $([[ $j1 == $rj ]] && echo SAME || echo DIFF)"
rm -rf $T
