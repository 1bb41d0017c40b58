#!/usr/bin/python3
"""Run fail2ban's own DateDetector over lines and print what it finds.

Used by the Rust tests of stadtwache-datetime as the reference (this script
only drives fail2ban; it contains none of its code).

stdin (JSON):  {"now": 1124013600, "tz": "CET-01CEST-02,M3.5.0,M10.5.0",
                "pattern": null | "datepattern text",
                "logtimezone": null | "UTC+0200",
                "prime_mktime": null | [y, m, d, H, M, S],
                "files": [{"name": "...", "lines": ["...", ...],
                           "pattern": (optional, overrides the global one)}, ...]}
stdout (JSON): {"files": [[null | [start, end, time], ...], ...]}
  start/end: byte offsets (UTF-8) of fail2ban's group 1 (the cut-out span);
  time: the float fail2ban gets, or null when it gets none.
Each file gets a fresh DateDetector (a fresh stream), as a jail would.
"""
import json
import os
import sys
import time


def main():
    req = json.load(sys.stdin)
    os.environ['TZ'] = req.get('tz') or 'CET-01CEST-02,M3.5.0,M10.5.0'
    time.tzset()
    from fail2ban.server.mytime import MyTime
    now = req.get('now', 1124013600)
    MyTime.setAlternateNow(now)
    MyTime.setTime(now)
    from fail2ban.server.datedetector import DateDetector
    import re

    def all_templates(dd):
        seen = [t.template for t in dd.templates]
        seen += list(DateDetector._defCache.templates)
        return seen

    out = []
    for f in req['files']:
        dd = DateDetector()
        pattern = f.get('pattern', req.get('pattern'))
        if pattern is not None:
            for p in filter(bool, map(str.strip, re.split('\n+', pattern))):
                dd.appendTemplate(p)
        if req.get('logtimezone') is not None:
            dd.default_tz = req['logtimezone']
        if not dd.templates:
            dd.addDefaultTemplate()
        # template.hits is global in fail2ban: start each stream from zero
        for t in all_templates(dd):
            t.hits = 0
        res = []
        prime = req.get('prime_mktime')
        for line in f['lines']:
            if prime:
                # glibc's mktime remembers the offset of its last result and
                # resolves DST folds with it: start each line from a known one
                time.mktime(tuple(prime) + (0, 0, -1))
            try:
                m, _t = dd.matchTime(line)
            except Exception:
                res.append(['error'])
                continue
            if not m:
                res.append(None)
                continue
            s, e = m.start(1), m.end(1)
            bs = len(line[:s].encode('utf-8'))
            be = bs + len(line[s:e].encode('utf-8'))
            tm = None
            if s != e:
                try:
                    d = dd.getTime(line[s:e], (m, _t))
                    tm = d[0] if d is not None else None
                except Exception:
                    tm = None
            res.append([bs, be, tm])
        out.append(res)
    json.dump({'files': out}, sys.stdout)


if __name__ == '__main__':
    main()
