#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""Deterministic mutations of sshd log lines for differential checks (see README.md).
usage: mut.py IN OUT [N]  -- takes the first N lines (default 200000) and edits ~half of them."""
import random, sys
src, dst = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
rnd = random.Random(42)
pieces = [b" ", b":", b"[", b"]", b"from ", b" port ", b"user ", b"invalid ", b"::1", b"1.2.3.4",
          b"\xc3\xa9", b"\xff", b"\t", b"  ", b"ssh2", b"(", b")", b"=", b"rhost=", b"preauth",
          b"Failed password for ", b"Invalid user ", b"Connection closed by ", b"\x00", b"0", b"999"]
out = open(dst, "wb")
with open(src, "rb") as f:
    for i, line in enumerate(f):
        if i >= n:
            break
        line = line.rstrip(b"\n")
        if rnd.random() < 0.5:
            for _ in range(rnd.randint(1, 3)):
                op = rnd.randint(0, 5)
                p = rnd.randint(0, len(line))
                if op == 0 and line:
                    line = line[:p] + line[p + 1:]
                elif op == 1:
                    line = line[:p] + rnd.choice(pieces) + line[p:]
                elif op == 2 and line:
                    q = min(len(line), p + rnd.randint(1, 12))
                    line = line[:p] + line[q:]
                elif op == 3 and line:
                    c = line[p % len(line)]
                    line = line[:p] + bytes([c]) + line[p:]
                elif op == 4:
                    line = line[:p]
                else:
                    line = line[:p] + rnd.choice(pieces) + line[p + 1:]
        out.write(line + b"\n")
out.close()
