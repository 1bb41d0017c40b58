#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0 OR MIT
"""Replay a historical log through fail2ban's own library and print its bans.

Reference implementation for Stadtwache's `replay`: it does not re-implement
fail2ban, it imports and drives fail2ban 1.0.2 (the Debian package, GPL) at
run time. Only the system interpreter has the modules: run it with
/usr/bin/python3.

fail2ban-server itself cannot replay an old file (while catching up it drops
lines older than now - findtime), so this script plays the server's role
with the clock pinned to the log:

  * the jail is built the way the server builds it: `Server` + `Transmitter`
    commands (`add JAIL polling`, then the filter's commands as produced by
    fail2ban's own `FilterReader.convert()`, then maxretry / findtime /
    bantime / ...);
  * the file is read with fail2ban's `FileContainer` (same decoding and
    line splitting as the polling backend);
  * before each line, `MyTime` is pinned to the line's own timestamp (never
    moving backwards), the year of year-less syslog stamps being inferred by
    fail2ban's date detector relative to that clock, as a live server does;
  * each line goes through `Filter.processLineAndAdd` (prefregex, failregex,
    ignoreregex, multi-line/mlfid merging, FailManager counting and aging,
    service cleanup every 100 lines, performBan on maxretry);
  * the jail's `Actions` object does the banning with its own `BanManager`
    (private methods `__checkBan` / `__checkUnBan`, called synchronously:
    expired bans are lifted before a line is processed - the actions thread
    wakes at the end of a ban -, queued tickets are banned right after it).
    The only action is a recorder. A failure that reaches maxretry while the
    address is still banned does not create a new ban; fail2ban prolongs the
    running ban instead (end = that failure's time + bantime). After the ban
    expired (clock > ban time + bantime), the next ticket is a new ban.

Output (stdout or --out): one line per ban event,
    <epoch seconds of the ban ticket's time> <address>
where the ticket's time is the time of the failure that triggered the ban,
sorted by time, then by address (byte-wise string order). Summary on stderr.
"""

import argparse
import json
import logging
import os
import sys
import time

DEFAULT_FILTER_DIR = "/etc/fail2ban/filter.d"
JAIL = "replay"


def die(msg):
    sys.stderr.write("fail2ban_replay: %s\n" % msg)
    sys.exit(2)


try:
    from fail2ban.client.filterreader import FilterReader
    from fail2ban.helpers import extractOptions
    from fail2ban.server import utils as f2b_utils
    from fail2ban.server.filter import FileContainer
    from fail2ban.server.mytime import MyTime
    from fail2ban.server.server import Server
    from fail2ban.server.transmitter import Transmitter
    from fail2ban.version import version as F2B_VERSION
except ImportError as e:  # pragma: no cover
    die("cannot import fail2ban (%s); run with /usr/bin/python3 and install "
        "the Debian package fail2ban" % e)


class _PinnedTime(object):
    """Stand-in for the `time` module inside fail2ban.server.utils.

    fail2ban's `Utils.Cache` (used for the multi-line failure-id cache,
    e.g. sshd's per-connection state, maxTime 5 min) expires entries with
    the wall clock. In a live server wall clock and log time advance
    together; in a replay they do not, so the cache sees the pinned clock.
    Everything else is delegated to the real module.
    """

    def __init__(self, real):
        self._real = real

    def time(self):
        return MyTime.time()

    def __getattr__(self, name):
        return getattr(self._real, name)


class Recorder(object):
    """The jail's only action: records ban/unban events, executes nothing."""

    banEpoch = 0
    _prolongable = False

    def __init__(self):
        self.bans = []
        self.unbans = []

    def start(self):
        pass

    def stop(self):
        pass

    def ban(self, aInfo):
        self.bans.append((int(aInfo["time"]), str(aInfo["fid"]), MyTime.time()))

    def reban(self, aInfo):  # pragma: no cover - needs ban epochs
        self.ban(aInfo)

    def unban(self, aInfo):
        # end of the (possibly prolonged) ban, not the moment it was noticed:
        self.unbans.append((int(aInfo["time"]) + int(aInfo["bantime"]), str(aInfo["fid"])))


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Replay a log through fail2ban's library (clock pinned to "
        "the log) and print the bans it makes: '<epoch> <address>' per line.")
    ap.add_argument("log", help="log file to replay")
    ap.add_argument("--filter", default="sshd",
                    help="filter name in --filter-dir, may carry options like "
                    "fail2ban's jail.conf: 'sshd[mode=aggressive]' (default sshd)")
    ap.add_argument("--mode", default=None,
                    help="filter mode (sets the filter option 'mode'; sshd: "
                    "normal, ddos, extra, aggressive). jail.conf default: normal")
    ap.add_argument("--filter-dir", default=DEFAULT_FILTER_DIR,
                    help="directory holding the filter files (a directory named "
                    "filter.d; its .local overrides are honoured) [%(default)s]")
    ap.add_argument("--maxretry", default="5", help="jail maxretry [%(default)s]")
    ap.add_argument("--findtime", default="10m",
                    help="jail findtime, fail2ban syntax (600, 10m, 1h) [%(default)s]")
    ap.add_argument("--bantime", default="10m",
                    help="jail bantime, fail2ban syntax; -1 = permanent [%(default)s]")
    ap.add_argument("--logtimezone", default="UTC",
                    help="time zone of log timestamps without zone (jail option "
                    "logtimezone); '' = the machine's local time [%(default)s]")
    ap.add_argument("--logencoding", default="auto",
                    help="jail option logencoding [%(default)s]")
    ap.add_argument("--ignoreip", default="",
                    help="jail option ignoreip (space separated) [none]")
    ap.add_argument("--no-ignoreself", action="store_true",
                    help="set ignoreself = false (jail.conf default is true)")
    ap.add_argument("--now", default=None,
                    help="reference 'now' (epoch seconds) used to infer the year "
                    "of the first year-less timestamp; default: the current time. "
                    "Later lines use the previous line's time.")
    ap.add_argument("--out", default="-", help="ban list file ('-' = stdout)")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="also write a JSON report (settings, counters, bans with "
                    "unban times) to FILE")
    ap.add_argument("--wall-cache-clock", action="store_true",
                    help="let fail2ban's multi-line cache expire by the wall "
                    "clock (as the unmodified library does) instead of log time")
    ap.add_argument("--svc", choices=("poll", "lines"), default="poll",
                    help="when the failure list is cleaned up: 'poll' = as the "
                    "polling backend's thread does besides the line path (tick "
                    "emulated before every line, library throttle 5 s); 'lines' "
                    "= only the line path (every 100 lines and on bans) "
                    "[%(default)s]")
    ap.add_argument("--no-prolong", action="store_true",
                    help="diagnostic, NOT fail2ban's behaviour: a ticket for an "
                    "address that is still banned does not extend the running ban")
    ap.add_argument("--verbose", "-v", action="count", default=0,
                    help="fail2ban log level: -v INFO, -vv DEBUG (slow)")
    return ap.parse_args(argv)


def setup_logging(verbose):
    lvl = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    log = logging.getLogger("fail2ban")
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("fail2ban %(levelname)s %(name)s: %(message)s"))
    log.addHandler(h)
    log.setLevel(lvl)
    log.propagate = False
    if verbose == 0:
        # "[jail] IP already banned" is logged at WARNING for every ticket of
        # an address that keeps failing during its ban - expected in a replay.
        logging.getLogger("fail2ban.actions").setLevel(logging.ERROR)


def build_jail(args):
    """Creates the jail like fail2ban-server does from client commands."""
    server = Server(daemon=False)
    tr = Transmitter(server)

    def cmd(*c):
        ret, out = tr.proceed(list(c))
        if ret != 0:
            die("fail2ban rejected %r: %r" % (list(c), out))
        return out

    # Filter: fail2ban's own reader, same as the client and fail2ban-regex.
    try:
        fname, fopts = extractOptions(args.filter)
    except ValueError:
        die("bad --filter %r" % args.filter)
    fopts = dict(fopts)
    if args.mode is not None:
        fopts["mode"] = args.mode
    elif "mode" not in fopts:
        fopts["mode"] = "normal"  # jail.conf [DEFAULT] mode = normal
    fdir = os.path.abspath(args.filter_dir)
    if os.path.isfile(os.path.join(fdir, fname)) or fname.endswith(".conf"):
        path = fname if os.path.isabs(fname) else os.path.join(fdir, fname)
        reader = FilterReader(path, JAIL, fopts, share_config={}, basedir=None)
        reader.setBaseDir(None)
        ok = reader.readexplicit()
    else:
        if os.path.basename(fdir) != "filter.d":
            die("--filter-dir must be a directory named filter.d (got %s)" % fdir)
        reader = FilterReader(fname, JAIL, fopts, share_config={},
                              basedir=os.path.dirname(fdir))
        ok = reader.read()
    if not ok:
        die("cannot read filter %r from %s" % (fname, fdir))
    reader.applyAutoOptions("polling")
    reader.getOptions(None)
    stream = reader.convert()

    cmd("add", JAIL, "polling")
    # Jail options in the order JailReader emits them (defaults of jail.conf
    # [DEFAULT] where we do not override them).
    cmd("set", JAIL, "usedns", "warn")
    cmd("set", JAIL, "maxretry", str(args.maxretry))
    cmd("set", JAIL, "maxmatches", str(args.maxretry))
    cmd("set", JAIL, "ignoreself", "false" if args.no_ignoreself else "true")
    for ip in args.ignoreip.split():
        cmd("set", JAIL, "addignoreip", ip)
    cmd("set", JAIL, "findtime", str(args.findtime))
    cmd("set", JAIL, "bantime", str(args.bantime))
    cmd("set", JAIL, "logencoding", args.logencoding)
    if args.logtimezone:
        cmd("set", JAIL, "logtimezone", args.logtimezone)
    for c in stream:
        if len(c) > 2 and c[2] == "addjournalmatch":
            continue  # systemd backend only
        cmd(*c)
    jail = server._Server__jails[JAIL]
    return server, jail, stream


def replay(args):
    if args.logtimezone == "UTC":
        # Make "now" (used for the year of year-less stamps) independent of
        # the machine's zone, matching the log's zone.
        os.environ["TZ"] = "UTC"
        time.tzset()
    if not args.wall_cache_clock:
        f2b_utils.time = _PinnedTime(f2b_utils.time)

    server, jail, stream = build_jail(args)
    flt = jail.filter
    acts = jail.actions
    rec = Recorder()
    acts._actions["recorder"] = rec
    bm = acts.banManager
    check_ban = acts._Actions__checkBan
    check_unban = acts._Actions__checkUnBan
    unban_max = acts.unbanMaxCount
    fm = flt.failManager
    dd = flt.dateDetector
    # In operation: the server is following the file live.
    flt.inOperation = True

    counters = {"prolonged": 0, "already_banned": 0, "expired_tickets": 0}
    orig_add = bm.addBanTicket

    ban_list = bm._BanManager__banList

    def add_ban_ticket(ticket, reason={}):
        old = ban_list.get(ticket.getID()) if args.no_prolong else None
        old_bt = old.getBanTime() if old is not None else None
        r = orig_add(ticket, reason=reason)
        if old is not None and reason.get("prolong"):
            old.setBanTime(old_bt)  # undo fail2ban's prolongation (diagnostic)
        if not r:
            if reason.get("prolong"):
                counters["prolonged"] += 1
            elif reason.get("expired"):
                counters["expired_tickets"] += 1
            else:
                counters["already_banned"] += 1
        return r

    bm.addBanTicket = add_ban_ticket

    now = None  # pinned clock (epoch seconds); None until the first dated line
    if args.now is not None:
        MyTime.setTime(float(args.now))
    else:
        MyTime.setTime(None)  # real time for the first stamp's year

    poll_svc = args.svc == "poll"
    lines = matched = undated = 0
    year_fixups = 0
    t0 = time.time()
    fc = FileContainer(args.log, flt.getLogEncoding(), tail=False)
    try:
        fc.open()
    except IOError as e:
        die("cannot open %s: %s" % (args.log, e))
    try:
        while True:
            line = fc.readline()
            if line is None:
                break
            lines += 1
            date = None
            tm = dd.matchTime(line)
            m = tm[0]
            if m:
                s, e = m.start(1), m.end(1)
                txt = line[s:e]
                if txt:
                    if now is not None:
                        MyTime.setTime(now)
                    dt = dd.getTime(txt, tm)
                    if dt is not None:
                        date = dt[0]
                        if now is not None and date < now - 180 * 86400:
                            # Year-less stamp just after New Year: a live
                            # server's clock would already be in the new year.
                            MyTime.setTime(now + 2 * 86400)
                            dt2 = dd.getTime(txt, tm)
                            MyTime.setTime(now)
                            if dt2 is not None and dt2[0] > date:
                                date = dt2[0]
                                year_fixups += 1
            if date is not None and (now is None or date > now):
                now = date
            if now is not None:
                MyTime.setTime(now)
            if poll_svc and now is not None:
                # The polling thread runs Filter.performSvc() (failure-list
                # cleanup, itself throttled to once per 5 s) every 10 ticks
                # of ~0.2-2 s, independent of the line count; emulate it as
                # "due at every line" so the 5 s throttle decides. Not before
                # the first dated line: the clock would be the wall clock,
                # which would push the next cleanup past a historical log.
                flt.performSvc()
            # Bans that ended before this moment are lifted first.
            while check_unban(unban_max) >= unban_max:
                pass
            before = fm.getFailTotal()
            if date is not None:
                flt.processLineAndAdd((line[:s], txt, line[e:]), date)
            else:
                undated += 1
                flt.processLineAndAdd(line)
            if fm.getFailTotal() != before:
                matched += 1
            while jail.hasFailTickets:
                check_ban()
    finally:
        fc.close()
    # Bans still running at the end of the log are simply left running.
    wall = time.time() - t0
    return {
        "lines": lines,
        "matched": matched,
        "undated": undated,
        "failures": fm.getFailTotal(),
        "bans": sorted((t, a) for (t, a, _) in rec.bans),
        "ban_events": rec.bans,
        "unbans": rec.unbans,
        "wall": wall,
        "year_fixups": year_fixups,
        "still_banned": bm.size(),
        "counters": counters,
        "stream": stream,
        "last_time": now,
    }


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose)
    res = replay(args)
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    try:
        out.write("".join("%d %s\n" % b for b in res["bans"]))
    finally:
        if out is not sys.stdout:
            out.close()
    c = res["counters"]
    lps = res["lines"] / res["wall"] if res["wall"] > 0 else float("inf")
    sys.stderr.write(
        "fail2ban %s replay: filter %s mode %s, maxretry %s, findtime %s, bantime %s\n"
        "lines %d, matched %d, failures %d, bans %d (addresses %d), "
        "prolonged %d, already-banned %d, undated %d\n"
        "wall %.2f s, %.0f lines/s\n" % (
            F2B_VERSION, args.filter, args.mode or "(filter default/normal)",
            args.maxretry, args.findtime, args.bantime,
            res["lines"], res["matched"], res["failures"], len(res["bans"]),
            len(set(a for _, a in res["bans"])), c["prolonged"], c["already_banned"],
            res["undated"], res["wall"], lps))
    if args.json:
        unb = {}
        for t, a in res["unbans"]:
            unb.setdefault(a, []).append(t)
        events = []
        for t, a, clock in sorted(res["ban_events"], key=lambda x: (x[0], x[1])):
            lst = unb.get(a) or []
            later = [u for u in lst if u >= t]
            events.append({"time": t, "address": a,
                           "unban_at": later[0] if later else None})
        with open(args.json, "w") as f:
            json.dump({
                "fail2ban_version": F2B_VERSION,
                "log": os.path.abspath(args.log),
                "filter": args.filter, "mode": args.mode,
                "filter_dir": args.filter_dir,
                "maxretry": args.maxretry, "findtime": args.findtime,
                "bantime": args.bantime, "logtimezone": args.logtimezone,
                "lines": res["lines"], "matched": res["matched"],
                "failures": res["failures"], "bans": len(res["bans"]),
                "ban_addresses": len(set(a for _, a in res["bans"])),
                "prolonged": c["prolonged"], "already_banned": c["already_banned"],
                "still_banned_at_end": res["still_banned"],
                "undated_lines": res["undated"], "year_fixups": res["year_fixups"],
                "wall_seconds": round(res["wall"], 3),
                "lines_per_second": round(lps),
                "filter_commands": res["stream"],
                "events": events,
            }, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
