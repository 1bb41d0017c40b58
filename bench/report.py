#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""Turn bench/run.sh's raw rows (OUT/runs.tsv) into ONE markdown table.

Usage: report.py OUT_DIR   (prints markdown; run.sh tees it to OUT/results.md)

Per (file, tool): medians over the repetitions that finished (wall, CPU =
user + system, peak RSS), matched lines and bans of the first finished run,
and ratios of our fail2ban-filter replay (`stadtwache-f2b`) against the
tool on the same file.
"""

import json
import os
import statistics
import sys

OUT = sys.argv[1]
RAW = os.path.join(OUT, "raw")

TOOLS = [  # display order, label, note
    ("stadtwache-f2b", "**stadtwache replay --filter sshd**", "reference row: fail2ban's sshd filter, fail2ban counting"),
    ("stadtwache-f2b-pgo", "**stadtwache replay --filter sshd, PGO build** ¶",
     "¶ the same code built with profile-guided optimisation by bench/pgo.sh (`run.sh --pgo`), "
     "trained on other generated logs (seed 42); its ratio cells compare the plain build with it"),
    ("stadtwache-native", "stadtwache replay --service (native)", "native rule pack (exact windows, more rules)"),
    ("fail2ban-replay", "fail2ban 1.0.2 jail replay", "bench/fail2ban_replay.py: fail2ban's library, bans"),
    ("fail2ban-regex", "fail2ban-regex ‡", "‡ matching only: no counting, no bans"),
    ("crowdsec", "CrowdSec 1.4.6 §", "§ shipped sshd/nginx parsers + scenarios; bans = decisions"),
    ("fail2ban-rs", "fail2ban-rs dry-run †", "† its own simplified 4-pattern sshd filter"),
]
LABEL = {t: l for t, l, _ in TOOLS}
ORDER = {t: i for i, (t, _, _) in enumerate(TOOLS)}
FILE_ORDER = ["sshd-100k.log", "sshd-1m.log", "sshd-10m.log", "nginx-1m.log", "card-1m.log"]


def read_kv(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 24)
            if not b:
                return n
            n += b.count(b"\n")


def fnum(x, digits=2):
    if x is None:
        return "—"
    if x >= 100:
        return "{:,.0f}".format(x)
    return "{:.{}f}".format(x, digits)


def ratio(peer, ours, what):
    """'×N faster' when the peer needs more, 'N× slower' when less."""
    if peer is None or ours is None or ours <= 0 or peer <= 0:
        return "—"
    r = peer / ours
    if 0.95 <= r <= 1.05:
        return "≈ same"
    if what == "rss":
        return "×{:.1f} smaller".format(r) if r >= 1 else "**{:.1f}× larger**".format(1 / r)
    return "×{:.1f} faster".format(r) if r >= 1 else "**{:.1f}× slower**".format(1 / r)


def addr_set(path):
    s = set()
    if path and os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) == 2:
                s.add(parts[1])
    return s


machine = read_kv(os.path.join(OUT, "machine.txt"))
timeout = None
for tok in machine.get("args", "").split("--"):
    if tok.startswith("timeout "):
        timeout = tok.split()[1]

rows = {}
for line in open(os.path.join(OUT, "runs.tsv")):
    f = line.rstrip("\n").split("\t")
    if len(f) < 11:
        continue
    file, tool, rep, status, wall, cpu, rss, matched, bans, addrs, banfile = f[:11]
    rows.setdefault((file, tool), []).append(dict(
        rep=int(rep), status=status, wall=float(wall or 0), cpu=float(cpu or 0),
        rss=int(rss or 0), matched=matched, bans=bans, addrs=addrs, banfile=banfile))

bancheck = {}
p = os.path.join(OUT, "bancheck.txt")
if os.path.exists(p):
    for line in open(p):
        parts = line.split(None, 2)
        if len(parts) >= 2:
            bancheck[parts[0]] = (parts[1], parts[2].strip() if len(parts) > 2 else "")

nlines = {}
for file, _ in rows:
    if file not in nlines:
        path = os.path.join(OUT, file)
        nlines[file] = count_lines(path) if os.path.exists(path) else None

summary = {}
for (file, tool), runs in rows.items():
    ok = [r for r in runs if r["status"] == "ok"]
    s = dict(n=len(runs), ok=len(ok), status=runs[0]["status"])
    if ok:
        s["wall"] = statistics.median(r["wall"] for r in ok)
        s["cpu"] = statistics.median(r["cpu"] for r in ok)
        s["rss"] = statistics.median(r["rss"] for r in ok) / 1024.0
        first = ok[0]
        s.update(matched=first["matched"], bans=first["bans"], addrs=first["addrs"], banfile=first["banfile"])
        s["varies"] = len({(r["matched"], r["bans"], r["addrs"]) for r in ok}) > 1
    else:
        s["wall"] = statistics.median(r["wall"] for r in runs)
    summary[(file, tool)] = s

out = []
w = out.append
w("## Stadtwache benchmark results")
w("")
w("Machine: {} cores, {}, {}; load average at start {}; {}.".format(
    machine.get("cores", "?"), machine.get("cpu", "?"), machine.get("mem", "?"),
    machine.get("load", "?"), machine.get("os", "?")))
w("Run: {} UTC, commit {}, `bench/run.sh {}`.".format(machine.get("date", "?"), machine.get("commit", "?"), machine.get("args", "")))
vers = ", ".join("{} {}".format(k, machine[k]) for k in ("stadtwache", "fail2ban", "crowdsec", "fail2ban-rs") if k in machine)
if vers:
    w("Versions: {}.".format(vers))
w("Thresholds wherever the tool allows: maxretry 5, findtime 600 s, bantime 600 s, log times UTC.")
w("Medians over the finished repetitions (`n` = finished/attempted). CPU = user + system.")
w("Ratios: our `stadtwache replay --filter sshd` against the tool on the same file (CPU time, wall time, peak RSS).")
w("")
w("| file | tool | n | wall s | CPU s | lines/s (wall) | lines/CPU-s | peak RSS MB | matched | bans | banned addrs | overlap with ours | ours vs it: CPU | wall | RSS |")
w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|")

keys = sorted(summary, key=lambda k: (FILE_ORDER.index(k[0]) if k[0] in FILE_ORDER else 99, k[0], ORDER.get(k[1], 99)))
for file, tool in keys:
    s = summary[(file, tool)]
    n = nlines.get(file)
    lab = LABEL.get(tool, tool)
    if s["ok"] == 0:
        why = "gave up after {} s".format(timeout) if s["status"] == "timeout" else "failed ({})".format(s["status"])
        w("| {} | {} | 0/{} | {} | | | | | | | | | | | |".format(file, lab, s["n"], why))
        continue
    ours = summary.get((file, "stadtwache-f2b"))
    lps = n / s["wall"] if n and s["wall"] > 0 else None
    lpc = n / s["cpu"] if n and s["cpu"] > 0 else None
    overlap = ""
    if tool != "stadtwache-f2b" and ours and ours.get("ok"):
        a, b = addr_set(ours.get("banfile")), addr_set(s.get("banfile"))
        if b or tool in ("fail2ban-replay", "crowdsec", "fail2ban-rs"):
            overlap = "{} both, {} ours only, {} theirs only".format(len(a & b), len(a - b), len(b - a))
        # compare_bans.sh's verdict: our plain build on fail2ban's row, the PGO build on its own
        check = {"fail2ban-replay": (file, ""), "stadtwache-f2b-pgo": (file + ":pgo", " to fail2ban's")}.get(tool)
        if check and check[0] in bancheck:
            st, detail = bancheck[check[0]]
            verdict = "ban events identical{}" if st == "same" else "**ban events DIFFER{}**"
            overlap = verdict.format(check[1]) + " ({}); ".format(detail) + overlap
    cpu_r = wall_r = rss_r = ""
    if tool != "stadtwache-f2b" and ours and ours.get("ok"):
        cpu_r = ratio(s["cpu"], ours["cpu"], "t")
        wall_r = ratio(s["wall"], ours["wall"], "t")
        rss_r = ratio(s["rss"], ours["rss"], "rss")
    matched = s["matched"] + (" (varies)" if s.get("varies") else "")
    w("| {} | {} | {}/{} | {} | {} | {} | {} | {:.1f} | {} | {} | {} | {} | {} | {} | {} |".format(
        file, lab, s["ok"], s["n"], fnum(s["wall"]), fnum(s["cpu"]), fnum(lps, 0), fnum(lpc, 0), s["rss"],
        matched, s["bans"], s["addrs"], overlap, cpu_r, wall_r, rss_r))

w("")
present = {tool for _, tool in summary}
for tool, lab, note in TOOLS:
    if tool in present:
        w("* {}: {}".format(lab.replace("**", ""), note))
w("* `matched`: lines with at least one failure (fail2ban sense); CrowdSec: `alerts=` count instead "
  "(it reports no matched-line count in replay mode). `bans`: ban events (an address banned again after "
  "expiry counts again); CrowdSec: decisions; fail2ban-rs: — (its dry-run only lists addresses).")
w("* `overlap with ours`: banned addresses compared with our fail2ban-filter replay on the same file.")

# Cardinality: the key cap
for tool in ("stadtwache-f2b", "stadtwache-native"):
    s = summary.get(("card-1m.log", tool))
    if not s or not s.get("ok"):
        continue
    js = os.path.join(RAW, "card-1m.{}.1".format("sw-f2b" if tool == "stadtwache-f2b" else "sw-native"), "summary.json")
    try:
        d = json.load(open(js))
        w("* card-1m.log, {}: {} lines, key cap 100,000 tracked (rule, key) pairs (default `--max-keys`): "
          "tracked_keys {:,} at end, evicted {:,}, peak RSS {:.1f} MB (timed run includes `--json` output).".format(
              LABEL[tool].strip("*"), d.get("lines"), d.get("tracked_keys", 0), d.get("evicted", 0), s["rss"]))
    except (OSError, ValueError):
        pass

# Targets of the issue, on the 1M-line sshd log, for each build of ours
for tool, key, build in (("stadtwache-f2b", "sshd-1m.log", "plain release build"),
                         ("stadtwache-f2b-pgo", "sshd-1m.log:pgo", "PGO build")):
    ours = summary.get(("sshd-1m.log", tool))
    if not ours or not ours.get("ok"):
        continue
    w("")
    w("Targets (sshd-1m.log), {}:".format(build))
    f2b = summary.get(("sshd-1m.log", "fail2ban-replay"))
    f2rs = summary.get(("sshd-1m.log", "fail2ban-rs"))
    if f2b and f2b.get("ok"):
        r = f2b["cpu"] / ours["cpu"]
        w("* ≥100× faster than fail2ban's replay: CPU ×{:.1f}, wall ×{:.1f} — {}".format(
            r, f2b["wall"] / ours["wall"], "met" if r >= 100 else "**NOT met**"))
    if f2rs and f2rs.get("ok"):
        r = f2rs["cpu"] / ours["cpu"]
        w("* ≥3× faster than fail2ban-rs: CPU ×{:.2f} (i.e. {}) — {}".format(
            r, ratio(f2rs["cpu"], ours["cpu"], "t").strip("*"), "met" if r >= 3 else "**NOT met**"))
    n = nlines.get("sshd-1m.log")
    if n and ours["cpu"] > 0:
        w("* ≥3,000,000 lines/s: {:,.0f} lines per CPU-second — {}".format(
            n / ours["cpu"], "met" if n / ours["cpu"] >= 3e6 else "**NOT met**"))
    bc = bancheck.get(key)
    if bc:
        w("* same bans as fail2ban: {}".format("met ({})".format(bc[1]) if bc[0] == "same" else "**NOT met** ({})".format(bc[1])))
    w("* ≤64 MB peak RSS: {:.1f} MB — {}".format(ours["rss"], "met" if ours["rss"] <= 64 else "**NOT met**"))

print("\n".join(out))
