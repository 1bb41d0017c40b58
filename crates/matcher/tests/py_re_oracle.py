#!/usr/bin/python3
"""Python `re` as an oracle for tests/python_re_translation.rs.

Reads JSON on stdin: {"cases": [{"pattern": str, "multiline": bool,
"hays": [str, ...]}], "sweeps": [{"pattern": str}]}.

Writes JSON: {"cases": [{"error": str|null, "results": [null | [g0, g1, ...]]}],
"sweeps": ["01?..."]} where a sweep has one char per code point 0..0x2FFFF
(surrogates as "?"): "1" if the pattern `fullmatch`es that single character,
"0" if not, "?" when Python's Unicode database has it unassigned.
"""
import json
import re
import sys
import unicodedata
import warnings

SWEEP_END = 0x30000


def main():
    warnings.simplefilter("ignore")  # Python's FutureWarnings about set syntax
    req = json.load(sys.stdin)
    out = {"cases": [], "sweeps": []}
    for c in req.get("cases", []):
        r = {"error": None, "results": []}
        try:
            rx = re.compile(c["pattern"], re.MULTILINE if c.get("multiline") else 0)
        except Exception as e:  # re.error, OverflowError, ...
            r["error"] = "%s: %s" % (type(e).__name__, e)
            out["cases"].append(r)
            continue
        for h in c["hays"]:
            m = rx.search(h)
            r["results"].append([m.group(0)] + list(m.groups()) if m else None)
        out["cases"].append(r)
    for s in req.get("sweeps", []):
        rx = re.compile(s["pattern"])
        bits = []
        for cp in range(SWEEP_END):
            if 0xD800 <= cp <= 0xDFFF:
                bits.append("?")
                continue
            ch = chr(cp)
            if unicodedata.category(ch) == "Cn":
                bits.append("?")
                continue
            bits.append("1" if rx.fullmatch(ch) else "0")
        out["sweeps"].append("".join(bits))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
