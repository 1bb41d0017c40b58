#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
# inter.sh ROUNDS BIN... : CPU seconds (user + system) of the 1M sshd replay for each binary,
# interleaved (BIN1, BIN2, ..., then again ROUNDS times), so that a change in the machine's
# load hits every binary alike; prints the minimum and every run per binary.
set -euo pipefail
K=${SPEEDKIT:-/work/speedkit}
R=$1; shift
args=(replay --tz UTC --filter sshd --maxretry 5 --findtime 10m --bantime 10m --no-progress)
t=$(mktemp)
trap 'rm -f "$t"' EXIT
cat "$K/sshd-1m.log" > /dev/null
declare -A all
for _ in $(seq "$R"); do
    for b in "$@"; do
        /usr/bin/time -f "%U %S" -o "$t" "$b" "${args[@]}" "$K/sshd-1m.log" > /dev/null 2>&1
        read -r u s < "$t"
        all[$b]="${all[$b]:-} $(echo "$u + $s" | bc)"
    done
done
for b in "$@"; do
    echo "$b: min $(tr ' ' '\n' <<< "${all[$b]}" | sed '/^$/d' | sort -n | head -n 1)  all:${all[$b]}"
done
