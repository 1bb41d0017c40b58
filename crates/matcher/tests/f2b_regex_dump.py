#!/usr/bin/python3
"""Dump every fully interpolated regex of every fail2ban filter, with how
Python's `re` (through fail2ban's own `Regex` class) searches sample lines.

Usage: f2b_regex_dump.py [FILTER_DIR [LOG_DIR]]   (JSON on stdout)

For each filter of FILTER_DIR (default /etc/fail2ban/filter.d) and each of
its modes, fail2ban's FilterReader gives prefregex/failregex/ignoreregex and
maxlines. Each regex is compiled with fail2ban's `Regex` (tags expanded,
`re.MULTILINE` for failregexes when maxlines > 1, as fail2ban's Filter does).

Haystacks are built from the filter's sample log in LOG_DIR (fail2ban's test
logs): the line with its date cut out (fail2ban's DateDetector), as the
buffer fail2ban searches ("\\n"-joined lines plus a final "\\n"); for filters
with a prefregex also the `content` it captured; for maxlines > 1 also
windows of consecutive lines. For every regex the output lists which
haystacks `search` matches, with the values of all groups (index order).

Used by tests/all_fail2ban_regexes.rs.
"""
import glob
import json
import logging
import os
import re
import sys

from fail2ban.client.filterreader import FilterReader
from fail2ban.server.datedetector import DateDetector
from fail2ban.server.failregex import Regex
from fail2ban.helpers import splitwords

MAX_HAYS = 400


def variants_of(path):
    """Option sets to load a filter with: the default, then each value of each
    parameter the filter selects by `<X-<param>>` (its `mode`, sshd's
    `publickey`, ...), the value being the suffix of an option `X-value`."""
    text = open(path, encoding="utf-8", errors="replace").read()
    uses = set(re.findall(r"<([\w-]+?)-<(\w+)>", text))
    keys = re.findall(r"^([\w-]+)\s*=", text, re.M)
    out = [None]
    for prefix, param in sorted(uses):
        for k in keys:
            if k.startswith(prefix + "-"):
                suf = k[len(prefix) + 1:]
                if suf and "-" not in suf and (param, suf) not in out:
                    out.append((param, suf))
    return out


def read_filter(name, basedir, mode):
    opts = {} if mode is None else {mode[0]: mode[1]}
    r = FilterReader(name, "jail", opts, basedir=basedir)
    if not r.read():
        raise ValueError("cannot read filter %s" % name)
    r.getOptions({})
    res = {"prefregex": None, "failregex": [], "ignoreregex": [], "maxlines": 1, "datepattern": None}
    for cmd in r.convert():
        vals = cmd[3] if cmd[0] == "multi-set" else [cmd[3]]
        for v in vals:
            if cmd[2] == "prefregex":
                res["prefregex"] = v or None
            elif cmd[2] == "addfailregex":
                res["failregex"].append(v)
            elif cmd[2] == "addignoreregex":
                res["ignoreregex"].append(v)
            elif cmd[2] == "maxlines":
                res["maxlines"] = int(v)
            elif cmd[2] == "datepattern":
                res["datepattern"] = v
    return res


def sample_lines(logdir, name):
    path = os.path.join(logdir, name)
    if not os.path.isfile(path):
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            out.append(line)
    return out


def cut_date(dd, line):
    m = dd.matchTime(line)
    if m and m[0]:
        mm = m[0]
        return line[:mm.start(1)] + line[mm.end(1):]
    return line


def groups(m):
    return [m.group(0)] + list(m.groups())


def main():
    filter_dir = sys.argv[1] if len(sys.argv) > 1 else "/etc/fail2ban/filter.d"
    logdir = sys.argv[2] if len(sys.argv) > 2 else "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs"
    basedir = os.path.dirname(filter_dir.rstrip("/"))
    logging.getLogger("fail2ban").handlers = [logging.NullHandler()]
    logging.getLogger("fail2ban").propagate = False
    out = []
    for path in sorted(glob.glob(os.path.join(filter_dir, "*.conf"))):
        name = os.path.basename(path)[:-5]
        lines = sample_lines(logdir, name)
        for mode in variants_of(path):
            entry = {"filter": name, "mode": None if mode is None else "%s=%s" % mode, "error": None, "maxlines": 1, "hays": [], "regexes": []}
            out.append(entry)
            try:
                f = read_filter(name, basedir, mode)
            except Exception as e:
                entry["error"] = "%s: %s" % (type(e).__name__, e)
                continue
            entry["maxlines"] = f["maxlines"]
            dd = DateDetector()
            try:
                if f["datepattern"]:
                    # as fail2ban's Filter.setDatePattern: one template per word/line
                    for p in splitwords(f["datepattern"]):
                        dd.appendTemplate(p)
                else:
                    dd.addDefaultTemplate()
                cut = [cut_date(dd, l) for l in lines]
            except Exception:
                cut = list(lines)
            hays = []
            for l in cut:
                hays.append(l + "\n")
            if f["maxlines"] > 1:
                n = f["maxlines"]
                for i in range(1, len(cut)):
                    w = cut[max(0, i - n + 1):i + 1]
                    if len(w) > 1:
                        hays.append("\n".join(w) + "\n")
            regs = []
            if f["prefregex"]:
                regs.append(("prefregex", f["prefregex"], False))
            for r in f["failregex"]:
                regs.append(("failregex", r, f["maxlines"] > 1))
            for r in f["ignoreregex"]:
                regs.append(("ignoreregex", r, False))
            compiled = []
            for kind, src, ml in regs:
                e = {"kind": kind, "source": src, "multiline": ml, "expanded": None, "error": None, "matches": {}}
                try:
                    rx = Regex(src, multiline=ml)
                    e["expanded"] = rx.getRegex()
                    compiled.append((e, rx._regexObj))
                except Exception as ex:
                    e["error"] = "%s: %s" % (type(ex).__name__, ex)
                entry["regexes"].append(e)
            # prefregex content becomes a haystack for the failregexes, as in fail2ban
            if f["prefregex"] and compiled and compiled[0][0]["kind"] == "prefregex":
                pre = compiled[0][1]
                for h in list(hays):
                    m = pre.search(h)
                    if m and "content" in pre.groupindex and m.group("content"):
                        hays.append(m.group("content") + "\n")
            seen = set()
            uniq = []
            for h in hays:
                if h not in seen:
                    seen.add(h)
                    uniq.append(h)
            hays = uniq[:MAX_HAYS]
            entry["hays"] = hays
            for e, rx in compiled:
                for i, h in enumerate(hays):
                    m = rx.search(h)
                    if m:
                        e["matches"][str(i)] = groups(m)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
