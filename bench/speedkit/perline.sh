#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
# perline.sh BIN: instructions per line of lines 100,001-200,000 of the 1M log (cachegrind 200k prefix minus 100k prefix, /100000)
BIN=$1; K=${SPEEDKIT:-/work/speedkit}
ir() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$BIN" replay --tz UTC --filter sshd --maxretry 5 --findtime 10m --bantime 10m --no-progress "$1" 2>&1 >/dev/null | sed -n 's/.*I *refs: *//p' | tr -d ,; }
a=$(ir $K/mix200k.log); b=$(ir $K/mix100k.log); e=$(ir $K/empty.log)
echo "200k $a  100k $b  empty(load) $e  per-line $(( (a-b)/100000 ))"
