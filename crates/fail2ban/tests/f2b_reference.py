#!/usr/bin/python3
"""Print what fail2ban's own FilterReader makes of filters, as JSON.

Reads {"basedir": "/etc/fail2ban", "filters": [{"name": "sshd", "opts": {...}}, ...]}
on stdin; writes a JSON list with, per filter: prefregex, failregex,
ignoreregex, datepattern, maxlines, journalmatch (as fail2ban's jail stream
would set them), or "error". Used by tests/filters_vs_fail2ban.rs.
"""
import json
import logging
import shlex
import sys

from fail2ban.client.filterreader import FilterReader
from fail2ban.server.filter import Filter


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def main():
    req = json.load(sys.stdin)
    log = Collect()
    root = logging.getLogger("fail2ban")
    root.handlers = [log]
    root.propagate = False
    out = []
    for f in req["filters"]:
        log.records = []
        r = {"name": f["name"], "opts": f["opts"], "error": None, "prefregex": None,
             "failregex": [], "ignoreregex": [], "datepattern": None, "maxlines": None,
             "journalmatch": []}
        try:
            reader = FilterReader(f["name"], "jail", dict(f["opts"]), basedir=req["basedir"])
            if not reader.read():
                raise ValueError("cannot read filter")
            reader.getOptions({})
            for cmd in reader.convert():
                vals = cmd[3] if cmd[0] == "multi-set" else [cmd[3]] if cmd[2] != "addjournalmatch" else [cmd[3:]]
                for v in vals:
                    if cmd[2] == "prefregex":
                        r["prefregex"] = v if v else None
                    elif cmd[2] == "addfailregex":
                        r["failregex"].append(v)
                    elif cmd[2] == "addignoreregex":
                        r["ignoreregex"].append(v)
                    elif cmd[2] == "datepattern":
                        r["datepattern"] = v
                    elif cmd[2] == "maxlines":
                        # as the jail's Filter.setMaxLines would refuse it:
                        Filter(None).setMaxLines(v)
                        r["maxlines"] = v
                    elif cmd[2] == "addjournalmatch":
                        r["journalmatch"].append(v)
        except Exception as e:  # report, the caller compares
            r["error"] = "%s: %s" % (type(e).__name__, e)
        r["log"] = list(log.records)
        out.append(r)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
