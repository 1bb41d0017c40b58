# Differential oracle for the runner's tests: drives fail2ban's own Filter
# (the Debian package's Python library) and writes, per line, the date cut
# fail2ban made and the failures it returned, in the runner's dump format
# (tab-separated; "\t", "\n", "\r", "\\" escaped):
#   F name | P prefregex | R failregex | I ignoreregex | M maxlines | C checkall
#   D datepattern
#   L name line cut-start cut-end time       (a line whose date fail2ban cut out)
#   J name line -1 -1 time                   (time given, journal style)
#   E regex-index fid nofail attempts time fields   (one result of that line)
#
# usage: python3 f2b_dump.py samples|scenarios OUT
#        python3 f2b_dump.py spec OUT FILTER [OPTIONS-JSON]   (one filter's spec only)
#
# Stadtwache's own code: it calls fail2ban as a library and copies none of it.
import atexit
import datetime
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, '/usr/lib/python3/dist-packages')
from fail2ban.server.filter import Filter, FileContainer  # noqa: E402
from fail2ban.client.filterreader import FilterReader  # noqa: E402
from fail2ban.server.mytime import MyTime  # noqa: E402

TEST_NOW = 1124013600
CONFIG_DIR = '/etc/fail2ban'
LOGS = '/usr/lib/python3/dist-packages/fail2ban/tests/files/logs'
TEST_CONFIG_DIR = '/usr/lib/python3/dist-packages/fail2ban/tests/config'

out = open(sys.argv[2], 'w')


def esc(s):
    return str(s).replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n').replace('\r', '\\r')


def emit(*a):
    out.write('\t'.join(esc(x) for x in a) + '\n')


def emit_result(ret):
    for idx, fid, t, fail in (ret or []):
        fields = []
        for k, v in sorted(fail.items()):
            if k in ('matches', 'nofail-matches', 'mlfpending') or v is None:
                continue
            if isinstance(v, set):
                v = ','.join(sorted(str(x) for x in v))
            elif isinstance(v, (list, tuple)):
                v = ','.join('' if x is None else str(x) for x in v)
            fields.append('%s=%s' % (k, v))
        emit('E', idx, '~' if fid is None else str(fid), 1 if fail.get('nofail') else 0,
             len(fail.get('matches', [])), '' if t is None else repr(float(t)), '\x1f'.join(fields))


def new_filter(checkall, pref, fail, ignore, maxlines, datepattern=None):
    f = Filter(None)
    f.returnRawHost = True
    f.checkAllRegex = checkall
    f.checkFindTime = False
    f.active = True
    if maxlines > 1:
        f.setMaxLines(maxlines)
    if pref:
        f.prefRegex = pref
    for r in fail:
        f.addFailRegex(r)
    for r in ignore:
        f.addIgnoreRegex(r)
    if datepattern is not None:
        f.setDatePattern(datepattern)
    return f


def emit_spec(name, checkall, pref, fail, ignore, maxlines, datepattern=None):
    emit('F', name)
    if datepattern is not None:
        emit('D', datepattern)
    if pref:
        emit('P', pref)
    for r in fail:
        emit('R', r)
    for r in ignore:
        emit('I', r)
    emit('M', maxlines)
    emit('C', int(checkall))


# --- fail2ban's sample logs, walked as its samples test walks them ----------

def samples(checkall):
    os.environ['TZ'] = 'CET-01CEST-02,M3.5.0,M10.5.0'
    time.tzset()
    MyTime.setTime(TEST_NOW)
    now_str = datetime.datetime.utcfromtimestamp(TEST_NOW).isoformat()
    share = {}
    names = [(n[:-5], CONFIG_DIR) for n in sorted(os.listdir(os.path.join(CONFIG_DIR, 'filter.d')))
             if n.endswith('.conf') and not n.endswith('common.conf')]
    # the samples test also runs its own test filters `zzz-*`; their include
    # of common.conf is relative to fail2ban's source tree, so they are read
    # from a copy beside the installed common.conf
    tmp = tempfile.mkdtemp(prefix='stadtwache-f2b-')
    atexit.register(shutil.rmtree, tmp, True)  # (every run used to leave it in /tmp)
    os.mkdir(os.path.join(tmp, 'filter.d'))
    shutil.copy(os.path.join(CONFIG_DIR, 'filter.d', 'common.conf'), os.path.join(tmp, 'filter.d'))
    for n in sorted(os.listdir(os.path.join(TEST_CONFIG_DIR, 'filter.d'))):
        if n.startswith('zzz-') and n.endswith('.conf'):
            text = open(os.path.join(TEST_CONFIG_DIR, 'filter.d', n)).read()
            text = re.sub(r'(?m)^before = .*common\.conf$', 'before = common.conf', text)
            open(os.path.join(tmp, 'filter.d', n), 'w').write(text)
            names.append((n[:-5], tmp))
    for name, basedir in names:
        if not os.path.isfile(os.path.join(LOGS, name)):
            continue
        filters = {}

        def read_filter(flt_name, opts):
            if flt_name in filters:
                return filters[flt_name]
            fr = FilterReader(name, "jail", dict(opts or {}), basedir=basedir, share_config=share)
            fr.read()
            fr.getOptions({})
            spec = {'pref': None, 'fail': [], 'ignore': [], 'maxlines': 1, 'datepattern': None}
            for opt in fr.convert():
                for v in (opt[3] if opt[0] == 'multi-set' else [opt[3]]):
                    if opt[2] == 'prefregex':
                        spec['pref'] = v
                    elif opt[2] == 'addfailregex':
                        spec['fail'].append(v)
                    elif opt[2] == 'addignoreregex':
                        spec['ignore'].append(v)
                    elif opt[2] == 'maxlines':
                        spec['maxlines'] = int(v)
                    elif opt[2] == 'datepattern':
                        spec['datepattern'] = v
            flt = new_filter(checkall, spec['pref'], spec['fail'], spec['ignore'], spec['maxlines'],
                             spec['datepattern'])
            tag = '%s#%d' % (flt_name, checkall)
            emit_spec(tag, checkall, spec['pref'], spec['fail'], spec['ignore'], spec['maxlines'],
                      spec['datepattern'])
            rec = []
            orig = flt.findFailure

            def spy(tuple_line, date, noDate=False):
                rec.append((tuple_line, date))
                return orig(tuple_line, date, noDate)
            flt.findFailure = spy
            filters[flt_name] = (tag, flt, rec)
            return filters[flt_name]

        filenames = [name]
        i = 0
        common = {}
        tests = None
        while i < len(filenames):
            fn = filenames[i]
            i += 1
            lc = FileContainer(os.path.join(LOGS, fn), 'UTF-8', doOpen=True)
            lc.waitForLineEnd = False
            ignore_block = False
            faildata = {}
            for line in lc:
                m = re.match("^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$", line)
                if m:
                    faildata = json.loads(m.group(2))
                    if m.group(1) == 'fileOptions':
                        common = faildata
                        continue
                    if m.group(1) == 'filterOptions':
                        tests = []
                        ignore_block = False
                        for fd in (faildata if isinstance(faildata, list) else [faildata]):
                            opts = dict(common)
                            opts.update(fd)
                            if opts.get('test.condition'):
                                ignore_block = not eval(opts.get('test.condition'))
                            if not ignore_block:
                                fo = dict((k, v) for k, v in opts.items() if not k.startswith('test.'))
                                flt_name = name + (opts.get('test.filter-name') or (str(fo) if fo else ''))
                                tests.append((read_filter(flt_name, fo), opts))
                        continue
                    if m.group(1) == 'addFILE':
                        filenames.append(faildata)
                        continue
                    line = next(lc)
                elif ignore_block or line.startswith('#') or not line.strip():
                    continue
                else:
                    faildata = {}
                if ignore_block:
                    continue
                if not tests:
                    tests = [(read_filter(name, None), {})]
                line = line.rstrip('\r\n')
                for (tag, flt, rec), opts in tests:
                    if faildata.get('constraint') and not eval(faildata['constraint'], {'name': name, 'opts': opts}):
                        continue
                    del rec[:]
                    if opts.get('logtype') != 'journal':
                        ret = flt.processLine(line)
                        text, kind = line, 'L'
                    else:
                        text, kind = (opts.get('test.prefix-line') or '') + line, 'J'
                        ret = flt.processLine(('', now_str, text), TEST_NOW)
                    s = e = -1
                    date = ''
                    if rec:
                        t, d = rec[0]
                        if kind == 'L' and t[0] + t[1] + t[2] == text and t[1]:
                            s = len(t[0])
                            e = s + len(t[1])
                        date = '' if d is None else repr(float(d))
                    emit(kind, tag, text, s, e, date)
                    emit_result(ret)


# --- hand-made scenarios (time given) ---------------------------------------

def scenarios():
    os.environ['TZ'] = 'UTC'
    time.tzset()
    MyTime.setTime(TEST_NOW)
    rnd = random.Random(7)

    conn = dict(pref=r"^<F-MLFID>conn \d+</F-MLFID>: <F-CONTENT>.+</F-CONTENT>$", fail=[
        r"^<F-NOFAIL>connect from</F-NOFAIL> <HOST>$",
        r"^auth failed for <F-USER>\S+</F-USER>$",
        r"^<F-NOFAIL>pam failure</F-NOFAIL> ruser=<F-ALT_USER>\S*</F-ALT_USER>(?: user=<F-USER>\S+</F-USER>)?$",
        r"^<F-MLFFORGET><F-MLFGAINED>accepted</F-MLFGAINED></F-MLFFORGET> for <F-USER>\S+</F-USER>$",
        r"^<F-MLFFORGET>closed</F-MLFFORGET>$",
        r"^bye from <HOST>$",
        r"^kicked <F-USER>\S+</F-USER> <F-NOFAIL>quietly</F-NOFAIL>$",
    ], ignore=[r"for ignored$"], maxlines=1)

    def conn_lines(n):
        msgs = ["connect from 192.0.2.%d", "auth failed for %s", "pam failure ruser=%s",
                "pam failure ruser=%s user=%s", "accepted for %s", "closed", "bye from 192.0.2.%d",
                "kicked %s quietly", "auth failed for ignored", "noise"]
        users = ["root", "bob", "amy", "ignored", ""]
        for _ in range(n):
            c = rnd.randrange(120)
            m = rnd.choice(msgs)
            k = m.count('%')
            if '192.0.2' in m:
                m = m % rnd.randrange(1, 9)
            elif k == 1:
                m = m % rnd.choice(users)
            elif k == 2:
                m = m % (rnd.choice(users), rnd.choice(users))
            yield "conn %d: %s" % (c, m)

    ml = dict(pref=r"^<F-MLFID>\w+</F-MLFID> <F-CONTENT>.+</F-CONTENT>$", fail=[
        r"^begin (?P<user>\S+)\n(?:.*\n)*?.*denied <HOST>$",
        r"^start <HOST><SKIPLINES>^stop$",
        r"^single <HOST>$",
    ], ignore=[r"secret"], maxlines=4)

    def ml_lines(n):
        msgs = ["begin %s", "denied 192.0.2.%d", "start 192.0.2.%d", "stop", "single 192.0.2.%d", "filler",
                "secret stuff", "x"]
        for _ in range(n):
            m = rnd.choice(msgs)
            if '%s' in m:
                m = m % rnd.choice(["u1", "u2"])
            elif '%d' in m:
                m = m % rnd.randrange(1, 5)
            yield ("%s %s" % (rnd.choice(["a", "b"]), m)) if rnd.random() < 0.9 else m

    mlnopref = dict(pref=None, fail=ml['fail'] + [r"^pair (?P<user>\S+)\n.*\n(?:.*\n)?pair end <HOST>$"],
                    ignore=[r"secret", r"^never$"], maxlines=3)

    def mlnopref_lines(n):
        for line in ml_lines(n):
            line = line.split(' ', 1)[-1] if rnd.random() < 0.5 else line
            yield rnd.choice([line, line, "pair u3", "pair end 192.0.2.9"])

    many = dict(pref=None, fail=[r"^a <HOST>", r"^b <HOST>", r"^c <HOST>", r"^a \S+ <F-ID>\w+</F-ID>$",
                                 r"^<F-ID/> d$", r"^e <SUBNET>$", r"^t <F-TUPLE_X>\w+</F-TUPLE_X> <HOST>$"],
                ignore=[r"skip"], maxlines=1)

    def many_lines(n):
        for _ in range(n):
            yield rnd.choice(["a 192.0.2.1", "a 192.0.2.1 tok", "b 2001:DB8::1", "c ::ffff:192.0.2.7 skip", "xyz d",
                              "e 192.0.2.9/24", "e 2001:db8::5/64", "b host.example", "a 192.0.2.300",
                              "c [2001:db8::2]", "", "t v 192.0.2.4"])

    # prefregex and failregex share group names: the failregex's groups that
    # did not take part override the prefregex's values (dict.update)
    prefuser = dict(pref=r"^(?:u=<F-USER>\S+</F-USER> )?(?:t=<F-ALT_TAG>\w+</F-ALT_TAG> )?<F-CONTENT>.+</F-CONTENT>$",
                    fail=[r"^fail(?: as <F-USER>\S+</F-USER>)?(?: tag <F-TAG>\w+</F-TAG>)? from <HOST>$",
                          r"^oops(?: <F-ALT_USER>\S+</F-ALT_USER>)? from <HOST>$"],
                    ignore=[], maxlines=1)

    def prefuser_lines(n):
        for _ in range(n):
            yield "%s%s%s from 192.0.2.%d" % (rnd.choice(["", "u=pre "]), rnd.choice(["", "t=tg "]),
                                            rnd.choice(["fail", "fail as cur", "fail tag x", "oops", "oops alt"]),
                                            rnd.randrange(1, 4))

    for name, spec, gen in [("prefuser", prefuser, prefuser_lines(300)), ("conn", conn, conn_lines(3000)),
                            ("ml", ml, ml_lines(2000)),
                            ("mlnopref", mlnopref, mlnopref_lines(2000)), ("many", many, many_lines(500))]:
        lines = list(gen)
        for checkall in (True, False):
            f = new_filter(checkall, spec['pref'], spec['fail'], spec['ignore'], spec['maxlines'])
            tag = "%s#%d" % (name, checkall)
            emit_spec(tag, checkall, spec['pref'], spec['fail'], spec['ignore'], spec['maxlines'])
            for line in lines:
                ret = f.processLine(('', 'T', line), TEST_NOW)
                emit('J', tag, line, -1, -1, repr(float(TEST_NOW)))
                emit_result(ret)


def spec(name, opts):
    # one stock filter as fail2ban reads it (for the runner's benchmark)
    fr = FilterReader(name, "jail", opts, basedir=CONFIG_DIR, share_config={})
    fr.read()
    fr.getOptions({})
    kinds = {'prefregex': 'P', 'addfailregex': 'R', 'addignoreregex': 'I', 'maxlines': 'M', 'datepattern': 'D'}
    emit('F', name)
    for opt in fr.convert():
        for v in (opt[3] if opt[0] == 'multi-set' else [opt[3]]):
            if opt[2] in kinds:
                emit(kinds[opt[2]], v)


if sys.argv[1] == 'samples':
    samples(True)
    samples(False)
elif sys.argv[1] == 'specs':
    # every stock filter (and sshd's modes) as fail2ban reads it, for the
    # runner's tests; one that fail2ban cannot read is left out
    for n in sorted(os.listdir(os.path.join(CONFIG_DIR, 'filter.d'))):
        if n.endswith('.conf'):
            for opts in ([{}, {"mode": "aggressive"}, {"mode": "ddos"}, {"mode": "extra"}] if n == 'sshd.conf' else [{}]):
                try:
                    spec(n[:-5], opts)
                except Exception:
                    pass
elif sys.argv[1] == 'spec':
    # usage: python3 f2b_dump.py spec OUT NAME ['{"mode": "aggressive"}']
    spec(sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
else:
    scenarios()
out.close()
