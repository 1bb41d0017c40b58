#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# bench/run.sh [--quick] [--reps N] [--peer-reps N] [--timeout SECS] [--slow-max-lines N]
#              [--sizes LIST] [--no-card] [--no-nginx] [--no-install] [--pgo]
#
# The benchmark suite: builds our release binaries, generates deterministic
# logs with stadtwache-loggen into bench/out/, installs the peers when missing
# (fail2ban and crowdsec from Debian packages, fail2ban-rs with cargo install
# into a cache dir), runs every tool over the same files in its own offline
# mode under /usr/bin/time -v, repeats, and writes ONE table of medians to
# bench/out/results.md (also printed). See BENCHMARKS.md for what the
# figures mean.
#
#   --quick            sshd 100k only (+ cardinality for the fast tools), 1 repetition
#   --reps N           repetitions per (file, tool); medians are reported (default 3)
#   --peer-reps N      repetitions of the slow peers (fail2ban-regex, fail2ban replay,
#                      CrowdSec), at most --reps (default: --reps)
#   --timeout SECS     time limit of one peer run; past it: "gave up after SECS"
#                      (default 900). A peer that gave up is not repeated on that file.
#   --slow-max-lines N fail2ban-regex, the fail2ban replay and CrowdSec only run on sshd/nginx
#                      files of at most N lines (default 1000000: the 10M file is for
#                      us and fail2ban-rs). The cardinality file is always offered to
#                      them in a full run (time limit applies).
#   --sizes LIST       sshd sizes, comma-separated, from 100k,1m,10m (default: all;
#                      --quick: 100k)
#   --no-card          skip the 1M-address cardinality run
#   --no-nginx         skip the nginx access log
#   --no-install       never install peers; missing ones are reported as "not installed"
#   --pgo              also build our binary with profile-guided optimisation (bench/pgo.sh:
#                      two more builds, trained on other generated logs) and run its
#                      fail2ban-filter replay as a row of its own, bans checked too
#
# Environment: CARGO_TARGET_DIR (default <repo>/target), BENCH_CACHE (where
# fail2ban-rs is installed, default ~/.cache/stadtwache-bench), BENCH_OUT
# (default bench/out), CROWDSEC_PORT (loopback API port, default: a free one).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
OUT=${BENCH_OUT:-$repo/bench/out}
CACHE=${BENCH_CACHE:-$HOME/.cache/stadtwache-bench}
TARGET=${CARGO_TARGET_DIR:-$repo/target}
PY=/usr/bin/python3

quick=
reps=3
reps_set=
peer_reps=
timeout_s=900
slow_max=1000000
sizes=
do_card=1
do_nginx=1
do_install=1
do_pgo=

usage() { sed -n '3,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1 ;;
        --reps) reps=$2; reps_set=1; shift ;;
        --peer-reps) peer_reps=$2; shift ;;
        --timeout) timeout_s=$2; shift ;;
        --slow-max-lines) slow_max=$2; shift ;;
        --sizes) sizes=$2; shift ;;
        --no-card) do_card= ;;
        --no-nginx) do_nginx= ;;
        --no-install) do_install= ;;
        --pgo) do_pgo=1 ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done
if [[ -n $quick ]]; then
    [[ -n $reps_set ]] || reps=1
    [[ -n $sizes ]] || sizes=100k
    do_nginx=
fi
[[ -n $sizes ]] || sizes=100k,1m,10m
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --reps needs a positive integer" >&2; exit 2; }
[[ -n $peer_reps ]] || peer_reps=$reps
[[ $peer_reps =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --peer-reps needs a positive integer" >&2; exit 2; }

say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

mkdir -p "$OUT" "$CACHE"
RUNS=$OUT/runs.tsv          # one row per measured run
: > "$RUNS"
RAW=$OUT/raw                # stdout/stderr/time of every run
rm -rf "$RAW"
mkdir -p "$RAW"

# ---------------------------------------------------------------- machine
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cores=$(nproc)"
    # (a VM may show only "AMD EPYC": family and model tell the generation
    # apart, e.g. family 23 is Zen 1/2, 25 is Zen 3/4; seconds of runs on
    # different generations are not comparable, and even ratios shift)
    echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*: //')" \
        "(family $(awk -F': ' '/^cpu family/ {print $2; exit}' /proc/cpuinfo)," \
        "model $(awk -F': ' '/^model[[:space:]]*:/ {print $2; exit}' /proc/cpuinfo))"
    echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)"
    echo "commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- crates 2>/dev/null || echo '+dirty-worktree')"
    echo "args=${quick:+--quick }--reps $reps --peer-reps $peer_reps --timeout $timeout_s --slow-max-lines $slow_max --sizes $sizes${do_card:+ card}${do_nginx:+ nginx}${do_pgo:+ --pgo}"
} > "$OUT/machine.txt"
say "machine: $(tr '\n' ' ' < "$OUT/machine.txt")"

# ---------------------------------------------------------------- build
say "building stadtwache + stadtwache-loggen (release, CARGO_TARGET_DIR=$TARGET)"
(cd "$repo" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet -p stadtwache -p stadtwache-loggen)
SW=$TARGET/release/stadtwache
GEN=$TARGET/release/stadtwache-loggen
SW_PGO=
if [[ -n $do_pgo ]]; then
    say "building the PGO binary (bench/pgo.sh)"
    SW_PGO=$(CARGO_TARGET_DIR=$TARGET "$here/pgo.sh" | tail -n 1)
    [[ -x $SW_PGO ]] || { echo "run.sh: bench/pgo.sh gave no binary" >&2; exit 1; }
fi

# ---------------------------------------------------------------- peers
apt_install() {
    [[ -n $do_install ]] || return 1
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" > "$OUT/apt.log" 2>&1 \
        || { say "apt-get install $* failed (see $OUT/apt.log)"; return 1; }
}
[[ -x /usr/bin/time ]] || apt_install time || { echo "run.sh: /usr/bin/time (Debian 'time') is required" >&2; exit 2; }
command -v timeout > /dev/null || { echo "run.sh: coreutils timeout is required" >&2; exit 2; }

have_f2b=
if [[ -x /usr/bin/fail2ban-regex ]] || apt_install fail2ban; then
    "$PY" -c 'import fail2ban' 2> /dev/null && have_f2b=1
fi

have_cs=
# (installed but left unconfigured by an earlier online post-install: its
# binaries exist, yet it must be configured before it can run)
cs_status=$(dpkg-query -W -f='${Status}' crowdsec 2> /dev/null || true)
if { ! command -v crowdsec > /dev/null || [[ $cs_status != "install ok installed" ]]; } && [[ -n $do_install ]]; then
    # Offline: the post-install would try to register with the central API
    # and leave the package unconfigured (PEERS-OFFLINE.md / README.Debian).
    # A failed post-install leaves the credentials file empty: write it then too.
    mkdir -p /etc/crowdsec
    [[ -s /etc/crowdsec/online_api_credentials.yaml ]] \
        || echo '# offline' > /etc/crowdsec/online_api_credentials.yaml
    apt_install crowdsec || dpkg --configure -a > /dev/null 2>&1 || true
fi
command -v crowdsec > /dev/null && command -v cscli > /dev/null && have_cs=1

F2RS=$CACHE/bin/fail2ban-rs
if [[ ! -x $F2RS && -n $do_install ]]; then
    say "cargo install --locked fail2ban-rs into $CACHE (a few minutes, once)"
    CARGO_TARGET_DIR=$CACHE/target cargo install --locked --quiet fail2ban-rs --root "$CACHE" \
        > "$OUT/fail2ban-rs-install.log" 2>&1 || say "fail2ban-rs install failed (see $OUT/fail2ban-rs-install.log)"
fi
have_f2rs=
[[ -x $F2RS ]] && have_f2rs=1

{
    echo "stadtwache=$("$SW" --version 2>/dev/null | awk '{print $NF}')"
    [[ -z $have_f2b ]] || echo "fail2ban=$(fail2ban-regex --version 2>/dev/null | awk 'NR==1 {print $NF}')"
    [[ -z $have_cs ]] || echo "crowdsec=$(crowdsec -version 2>&1 | sed -n 's/.*version: *v\{0,1\}\([^ ]*\).*/\1/p' | head -1)"
    [[ -z $have_f2rs ]] || echo "fail2ban-rs=$("$F2RS" --version 2>/dev/null | awk '{print $NF}')"
} >> "$OUT/machine.txt"

# ---------------------------------------------------------------- logs
# Regenerated only when the generator binary or its arguments changed.
gen() {  # gen FILE ARGS...
    local file=$1; shift
    local stamp
    stamp="$(sha256sum "$GEN" | cut -c1-16) $*"
    if [[ -f $file && -f $file.stamp && $(cat "$file.stamp") == "$stamp" ]]; then
        return
    fi
    say "generating $(basename "$file"): stadtwache-loggen $*"
    "$GEN" "$@" -o "$file"
    echo "$stamp" > "$file.stamp"
}
lines_of() { case $1 in 100k) echo 100000 ;; 1m) echo 1000000 ;; 10m) echo 10000000 ;; *) echo "run.sh: bad size $1" >&2; exit 2 ;; esac; }

sshd_files=()
IFS=, read -r -a size_list <<< "$sizes"
for s in "${size_list[@]}"; do
    gen "$OUT/sshd-$s.log" sshd --lines "$(lines_of "$s")" --seed 1
    sshd_files+=("$OUT/sshd-$s.log")
done
[[ -n $do_nginx ]] && gen "$OUT/nginx-1m.log" nginx --lines 1000000 --seed 1
[[ -n $do_card ]] && gen "$OUT/card-1m.log" cardinality --addresses 1000000 --seed 1

# ---------------------------------------------------------------- measuring
# measure LABEL FILE TOOL REP -- CMD...   (stdout/stderr/time kept under $RAW/LABEL)
# Sets M_STATUS (ok|timeout|error) and M_DIR. Appends nothing: the caller
# appends the row once it has parsed matched/bans.
measure() {
    local label=$1; shift 2
    shift 2  # TOOL REP (only for the caller's bookkeeping)
    [[ $1 == -- ]] && shift
    M_DIR=$RAW/$label
    mkdir -p "$M_DIR"
    local rc=0 a
    # the input files into the page cache first, so that no tool pays for
    # reading from disk what the tool before it pushed out (CrowdSec's
    # cardinality run takes GBs)
    for a in "$@"; do
        a=${a#file://}
        [[ -f $a && $a == *.log ]] && cat -- "$a" > /dev/null
    done
    /usr/bin/time -v -o "$M_DIR/time" timeout -k 15 "$timeout_s" "$@" \
        > "$M_DIR/stdout" 2> "$M_DIR/stderr" || rc=$?
    if [[ $rc -eq 0 ]]; then
        M_STATUS=ok
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        M_STATUS=timeout
    else
        M_STATUS=error
        say "  $label exited $rc; last stderr lines:"
        tail -3 "$M_DIR/stderr" >&2 || true
    fi
}
time_field() {  # time_field FILE 'Pattern'  -> value after ': '
    grep -m1 "$2" "$1" | sed 's/.*: //'
}
wall_of() {  # h:mm:ss or m:ss.ss -> seconds
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.3f", s }' <<< "$1"
}
record() {  # record FILE TOOL REP MATCHED BANS ADDRS [BANFILE]
    local file=$1 tool=$2 rep=$3 matched=$4 bans=$5 addrs=$6 banfile=${7:-}
    local t=$M_DIR/time wall cpu rss
    wall=$(wall_of "$(time_field "$t" 'Elapsed (wall clock)')")
    cpu=$(awk -v u="$(time_field "$t" 'User time')" -v s="$(time_field "$t" 'System time')" 'BEGIN{printf "%.3f", u+s}')
    rss=$(time_field "$t" 'Maximum resident set size')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(basename "$file")" "$tool" "$rep" \
        "$M_STATUS" "$wall" "$cpu" "$rss" "$matched" "$bans" "$addrs" "$banfile" >> "$RUNS"
    say "  $(basename "$file") $tool #$rep: $M_STATUS wall ${wall}s cpu ${cpu}s rss ${rss}KB matched $matched bans $bans addrs $addrs"
}
addrs_of() { [[ -s $1 ]] && cut -d' ' -f2 "$1" | sort -u | wc -l || echo 0; }
lines_in() { wc -l < "$1"; }
matched_sw() { sed -n 's/^Lines: [0-9]* lines, \([0-9]*\) matched.*/\1/p' "$1" | head -1; }

gave_up=" "   # "|file|tool|" pairs that timed out: not repeated
# slow peers: only the first --peer-reps repetitions, and never again after a timeout
skip_if_gave_up() { [[ $rep -gt $peer_reps || $gave_up == *"|$1|$2|"* ]]; }
note_gave_up() { if [[ $M_STATUS == timeout ]]; then gave_up+="|$1|$2|"; fi; }

run_stadtwache_f2b() {  # FILE REP [json|pgo]
    local f=$1 rep=$2 b label sw=$SW tool=stadtwache-f2b tag=sw-f2b
    if [[ ${3:-} == pgo ]]; then sw=$SW_PGO tool=stadtwache-f2b-pgo tag=sw-f2b-pgo; fi
    label="$(basename "$f" .log).$tag.$rep"
    b=$RAW/$label.bans
    if [[ ${3:-} == json ]]; then
        measure "$label" "$f" "$tag" "$rep" -- "$sw" replay --tz UTC --filter sshd --maxretry 5 \
            --findtime 10m --bantime 10m --no-progress --json --bans-out "$b" "$f"
        tail -n 1 "$M_DIR/stdout" > "$M_DIR/summary.json"
        sed -n 's/.*"matched":\([0-9]*\).*/\1/p' "$M_DIR/summary.json" > "$M_DIR/matched"
    else
        measure "$label" "$f" "$tag" "$rep" -- "$sw" replay --tz UTC --filter sshd --maxretry 5 \
            --findtime 10m --bantime 10m --no-progress --bans-out "$b" "$f"
        matched_sw "$M_DIR/stdout" > "$M_DIR/matched"
    fi
    record "$f" "$tool" "$rep" "$(cat "$M_DIR/matched")" "$(lines_in "$b" 2>/dev/null || echo -)" "$(addrs_of "$b")" "$b"
}

run_stadtwache_native() {  # FILE REP SERVICE [json]
    local f=$1 rep=$2 svc=$3 b label
    label="$(basename "$f" .log).sw-native.$rep"
    b=$RAW/$label.bans
    local json=()
    [[ ${4:-} == json ]] && json=(--json)
    measure "$label" "$f" sw-native "$rep" -- "$SW" replay --tz UTC --service "$svc" \
        --no-progress "${json[@]}" --bans-out "$b" "$f"
    if [[ ${4:-} == json ]]; then
        tail -n 1 "$M_DIR/stdout" > "$M_DIR/summary.json"
        sed -n 's/.*"matched":\([0-9]*\).*/\1/p' "$M_DIR/summary.json" > "$M_DIR/matched"
    else
        matched_sw "$M_DIR/stdout" > "$M_DIR/matched"
    fi
    record "$f" stadtwache-native "$rep" "$(cat "$M_DIR/matched")" "$(lines_in "$b" 2>/dev/null || echo -)" "$(addrs_of "$b")" "$b"
}

run_f2b_regex() {  # FILE REP FILTER
    local f=$1 rep=$2 filter=$3 label m
    label="$(basename "$f" .log).f2b-regex.$rep"
    measure "$label" "$f" f2b-regex "$rep" -- fail2ban-regex "$f" "$filter"
    m=$(sed -n 's/^Lines: [0-9]* lines, [0-9]* ignored, \([0-9]*\) matched.*/\1/p' "$M_DIR/stdout" | head -1)
    record "$f" fail2ban-regex "$rep" "${m:--}" - - ""
}

run_f2b_replay() {  # FILE REP
    local f=$1 rep=$2 label b m
    label="$(basename "$f" .log).f2b-replay.$rep"
    b=$RAW/$label.bans
    measure "$label" "$f" f2b-replay "$rep" -- "$PY" "$here/fail2ban_replay.py" --filter sshd \
        --mode normal --maxretry 5 --findtime 10m --bantime 10m --json "$RAW/$label.json" --out "$b" "$f"
    m=-
    [[ -s $RAW/$label.json ]] && m=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["matched"])' "$RAW/$label.json")
    if [[ $M_STATUS == ok ]]; then
        record "$f" fail2ban-replay "$rep" "$m" "$(lines_in "$b")" "$(addrs_of "$b")" "$b"
    else
        record "$f" fail2ban-replay "$rep" - - - ""
    fi
}

# CrowdSec: private config (shared read-only hub/parsers/scenarios from the
# package, own data dir + SQLite DB, own loopback API port, no prometheus, no
# central API). A fresh DB and a machine registration for every run.
cs_port() {
    [[ -n ${CROWDSEC_PORT:-} ]] && { echo "$CROWDSEC_PORT"; return; }
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cs_setup() {  # DIR -> writes DIR/config.yaml, fresh DB, registered machine
    local d=$1 port
    port=$(cs_port)
    rm -rf "$d"
    mkdir -p "$d/data"
    find /var/lib/crowdsec/data -maxdepth 1 -type f ! -name 'crowdsec.db*' -exec cp {} "$d/data/" \;
    : > "$d/acquis.yaml"
    cat > "$d/config.yaml" <<EOF
common:
  daemonize: false
  log_media: file
  log_level: warning
  log_dir: $d/
  working_dir: .
config_paths:
  config_dir: /etc/crowdsec/
  data_dir: $d/data/
  simulation_path: /etc/crowdsec/simulation.yaml
  hub_dir: /var/lib/crowdsec/hub/
  index_path: /var/lib/crowdsec/hub/.index.json
  notification_dir: /etc/crowdsec/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: $d/acquis.yaml
  parser_routines: 1
cscli:
  output: human
db_config:
  log_level: warning
  type: sqlite
  db_path: $d/data/crowdsec.db
  use_wal: true
plugin_config:
  user: nobody
  group: nogroup
api:
  client:
    insecure_skip_verify: false
    credentials_path: $d/local_api_credentials.yaml
  server:
    log_level: warning
    listen_uri: 127.0.0.1:$port
    profiles_path: /etc/crowdsec/profiles.yaml
    trusted_ips:
      - 127.0.0.1
prometheus:
  enabled: false
  level: full
  listen_addr: 127.0.0.1
  listen_port: 0
EOF
    cscli -c "$d/config.yaml" machines add bench --auto --force -f "$d/local_api_credentials.yaml" \
        > "$d/register.log" 2>&1
}
run_crowdsec() {  # FILE REP TYPE
    local f=$1 rep=$2 type=$3 label d b counts
    label="$(basename "$f" .log).crowdsec.$rep"
    d=$RAW/$label.cs
    cs_setup "$d"
    b=$RAW/$label.bans
    measure "$label" "$f" crowdsec "$rep" -- crowdsec -c "$d/config.yaml" -dsn "file://$f" -type "$type" -no-capi
    # alerts / decisions / distinct decided addresses, from its SQLite DB
    counts=$("$PY" - "$d/data/crowdsec.db" "$b" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
alerts = db.execute("select count(*) from alerts").fetchone()[0]
dec = db.execute("select count(*) from decisions").fetchone()[0]
ips = sorted({r[0] for r in db.execute("select value from decisions where lower(scope) = 'ip'")})
with open(sys.argv[2], "w") as out:
    for ip in ips:
        out.write("0 %s\n" % ip)
print(alerts, dec, len(ips))
EOF
    ) || counts="- - -"
    read -r alerts dec ips <<< "$counts"
    echo "$alerts" > "$M_DIR/alerts"
    # matched: not reported by crowdsec in this mode; "bans" = decisions
    record "$f" crowdsec "$rep" "alerts=$alerts" "$dec" "$ips" "$b"
}

run_f2rs() {  # FILE REP
    local f=$1 rep=$2 label d b m
    label="$(basename "$f" .log).f2rs.$rep"
    d=$RAW/$label.f2rs
    mkdir -p "$d"
    {
        printf '[global]\nstate_file = "%s/state.bin"\nsocket_path = "%s/f2rs.sock"\n\n' "$d" "$d"
        # Its built-in sshd jail (4 patterns), with our thresholds.
        "$F2RS" gen-config sshd | grep -vE '^(max_retry|find_time|ban_time)[[:space:]]*=' \
            | sed "s#^log_path = .*#log_path = \"$f\"#"
        printf 'max_retry = 5\nfind_time = 600\nban_time = 600\n'
    } > "$d/config.toml"
    b=$RAW/$label.bans
    measure "$label" "$f" f2rs "$rep" -- "$F2RS" -c "$d/config.toml" dry-run "$f"
    m=$(sed -n 's/^[[:space:]]*Matches:[[:space:]]*\([0-9]*\).*/\1/p' "$M_DIR/stdout" | head -1)
    sed -n 's/^[[:space:]]*\([0-9a-fA-F.:]*\): [0-9]* failures[[:space:]]*<- WOULD BAN.*/0 \1/p' "$M_DIR/stdout" > "$b"
    record "$f" fail2ban-rs "$rep" "${m:--}" - "$(addrs_of "$b")" "$b"
}

lines_of_file() { wc -l < "$1"; }

for rep in $(seq 1 "$reps"); do
    say "repetition $rep/$reps"
    for f in "${sshd_files[@]}"; do
        n=$(lines_of_file "$f")
        run_stadtwache_f2b "$f" "$rep"
        if [[ -n $SW_PGO ]]; then run_stadtwache_f2b "$f" "$rep" pgo; fi
        run_stadtwache_native "$f" "$rep" sshd
        if [[ -n $have_f2rs ]]; then run_f2rs "$f" "$rep"; fi
        if [[ $n -le $slow_max ]]; then
            b=$(basename "$f")
            if [[ -n $have_f2b ]]; then
                skip_if_gave_up "$b" f2b-regex || { run_f2b_regex "$f" "$rep" sshd; note_gave_up "$b" f2b-regex; }
                skip_if_gave_up "$b" f2b-replay || { run_f2b_replay "$f" "$rep"; note_gave_up "$b" f2b-replay; }
            fi
            if [[ -n $have_cs ]]; then
                skip_if_gave_up "$b" crowdsec || { run_crowdsec "$f" "$rep" syslog; note_gave_up "$b" crowdsec; }
            fi
        fi
    done
    if [[ -n $do_nginx ]]; then
        f=$OUT/nginx-1m.log
        run_stadtwache_native "$f" "$rep" http
        if [[ -n $have_cs && $(lines_of_file "$f") -le $slow_max ]]; then
            skip_if_gave_up nginx-1m.log crowdsec || { run_crowdsec "$f" "$rep" nginx; note_gave_up nginx-1m.log crowdsec; }
        fi
    fi
    if [[ -n $do_card ]]; then
        f=$OUT/card-1m.log
        run_stadtwache_f2b "$f" "$rep" json
        run_stadtwache_native "$f" "$rep" sshd json
        if [[ -n $have_f2rs ]]; then run_f2rs "$f" "$rep"; fi
        if [[ -z $quick ]]; then
            if [[ -n $have_f2b ]]; then
                skip_if_gave_up card-1m.log f2b-regex || { run_f2b_regex "$f" "$rep" sshd; note_gave_up card-1m.log f2b-regex; }
                skip_if_gave_up card-1m.log f2b-replay || { run_f2b_replay "$f" "$rep"; note_gave_up card-1m.log f2b-replay; }
            fi
            if [[ -n $have_cs ]]; then
                skip_if_gave_up card-1m.log crowdsec || { run_crowdsec "$f" "$rep" syslog; note_gave_up card-1m.log crowdsec; }
            fi
        fi
    fi
done

# ---------------------------------------------------------------- ban check
# Our fail2ban-filter replay must ban exactly like fail2ban (compare_bans.sh).
: > "$OUT/bancheck.txt"
for f in "${sshd_files[@]}"; do
    b=$(basename "$f" .log)
    ref=$RAW/$b.f2b-replay.1.bans
    for tag in sw-f2b sw-f2b-pgo; do
        ours=$RAW/$b.$tag.1.bans
        key=$(basename "$f")
        [[ $tag == sw-f2b ]] || key=$key:pgo
        if [[ -s $ref && -f $ours ]]; then
            if res=$("$here/compare_bans.sh" --lists "$ref" "$ours" 2> "$RAW/$b.$tag.bancheck.err"); then
                echo "$key same $res" >> "$OUT/bancheck.txt"
            else
                echo "$key DIFFERENT $res" >> "$OUT/bancheck.txt"
            fi
        fi
    done
done

"$PY" "$here/report.py" "$OUT" | tee "$OUT/results.md"
say "wrote $OUT/results.md (raw runs: $RUNS, outputs: $RAW)"
