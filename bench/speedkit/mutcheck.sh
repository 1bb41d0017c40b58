#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
# mutcheck.sh BIN: --json output on mut.log for sshd and sshd[mode=aggressive] must equal the session-start build's.
set -u
BIN=$1; K=${SPEEDKIT:-/work/speedkit}; ok=1
for f in sshd 'sshd[mode=aggressive]'; do
  got=$("$BIN" replay --tz UTC --filter "$f" --maxretry 5 --findtime 10m --bantime 10m --no-progress --json $K/mut.log 2>/dev/null | sed "s/\"seconds\":[0-9.e+-]*//" | md5sum | cut -c1-12)
  want=$(cat "$K/ref.mut.$f.md5")
  if [[ $got == "$want" ]]; then echo "$f: SAME"; else echo "$f: DIFF ($got vs $want)"; ok=0; fi
done
[[ $ok == 1 ]]
