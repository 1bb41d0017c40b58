#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# setup.sh [BASELINE_BIN]: prepares the speed kit's work folder ($SPEEDKIT, default
# /work/speedkit): the 1M sshd log (stadtwache-loggen, seed 1), its 100k/200k prefixes,
# the mutated 200k log, an empty log, and the reference outputs of the baseline binary
# (default: a release build of this checkout) that measure.sh and mutcheck.sh compare with.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
K=${SPEEDKIT:-/work/speedkit}
TARGET=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$K"
(cd "$repo" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet -p stadtwache -p stadtwache-loggen)
base=${1:-$K/baseline}
[[ $# -gt 0 ]] || cp "$TARGET/release/stadtwache" "$base"
"$TARGET/release/stadtwache-loggen" sshd --lines 1000000 --seed 1 -o "$K/sshd-1m.log"
head -n 100000 "$K/sshd-1m.log" > "$K/mix100k.log"
head -n 200000 "$K/sshd-1m.log" > "$K/mix200k.log"
python3 "$here/mut.py" "$K/sshd-1m.log" "$K/mut.log" 200000
: > "$K/empty.log"
args=(replay --tz UTC --filter sshd --maxretry 5 --findtime 10m --bantime 10m --no-progress)
# (the summary's "seconds" differs from run to run; the file names are absolute in the JSON)
strip() { sed 's/"seconds":[0-9.e+-]*//'; }
"$base" "${args[@]}" --bans-out "$K/ref.bans" "$K/sshd-1m.log" > /dev/null
md5sum < "$K/ref.bans" | cut -c1-12 > "$K/ref.bans.md5"
"$base" "${args[@]}" --json --bans-out /dev/null "$K/sshd-1m.log" 2>/dev/null | strip | md5sum | cut -c1-12 > "$K/ref.json.md5"
for f in sshd 'sshd[mode=aggressive]'; do
    "$base" replay --tz UTC --filter "$f" --maxretry 5 --findtime 10m --bantime 10m --no-progress --json "$K/mut.log" \
        2>/dev/null | strip | md5sum | cut -c1-12 > "$K/ref.mut.$f.md5"
done
echo "speed kit ready in $K (baseline $base)"
