#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0 OR MIT
#
# bench/pgo.sh
#
# Builds the `stadtwache` binary with profile-guided optimisation (PGO):
#   1. an instrumented build (-Cprofile-generate) into $CARGO_TARGET_DIR/pgo-gen;
#   2. training runs of that binary on logs generated here, NOT the benchmark's
#      files: a 300,000-line sshd log and a 100,000-line nginx log with seed 42
#      (the benchmark uses seed 1), another host name, attacker count and span;
#      replayed with fail2ban's sshd filter (normal and aggressive mode), with
#      the native rule pack, and the shipped examples (examples/logs);
#   3. llvm-profdata merges the counters into pgo/stadtwache-<sha>.profdata;
#   4. the optimised build (-Cprofile-use) into $CARGO_TARGET_DIR/pgo-use.
# The code is the same as `cargo build --release`; only the compiler's
# inlining, block layout and branch decisions follow the measured profile.
# Prints the optimised binary's path on its last line of stdout. Steps 1-3 are
# skipped when the profile was made from the same sources (pgo/stamp); step 4
# is then cargo's no-op when nothing changed.
#
# Needs llvm-profdata of the compiler's own LLVM version: rustup's
# `llvm-tools` component (tried with `rustup component add llvm-tools` when
# missing). Without it: exit 3 and a message; nothing is skipped silently.
#
# Environment: CARGO_TARGET_DIR (default <repo>/target); the training logs
# and profiles go to $CARGO_TARGET_DIR/pgo.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$repo/target}
case $TARGET in /*) ;; *) TARGET=$repo/$TARGET ;; esac
WORK=$TARGET/pgo

say() { printf '[pgo %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [[ ! -x $profdata ]]; then
    say "llvm-profdata missing: rustup component add llvm-tools"
    rustup component add llvm-tools >&2 || true
fi
if [[ ! -x $profdata ]]; then
    echo "pgo.sh: llvm-profdata not found at $profdata (install: rustup component add llvm-tools)" >&2
    exit 3
fi

mkdir -p "$WORK"

make_profile() {
    # 0. the generator, an ordinary release build (not instrumented: its own
    # counters would be mixed into the profile)
    (cd "$repo" && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet -p stadtwache-loggen)
    local gen=$TARGET/release/stadtwache-loggen

    # 1. instrumented build
    say "instrumented build (CARGO_TARGET_DIR=$TARGET/pgo-gen)"
    local raw=$WORK/raw
    (cd "$repo" && RUSTFLAGS="-Cprofile-generate=$raw" CARGO_TARGET_DIR=$TARGET/pgo-gen \
        cargo build --release --quiet -p stadtwache)
    local inst=$TARGET/pgo-gen/release/stadtwache
    # (instrumented build scripts may have left counters there during the build)
    rm -rf "$raw"
    mkdir -p "$raw"

    # 2. training runs, on logs that are not the benchmark's
    local sshd=$WORK/train-sshd.log nginx=$WORK/train-nginx.log
    [[ -s $sshd ]] || "$gen" sshd --lines 300000 --seed 42 --host gw01 --attackers 2000 --days 2 -o "$sshd"
    [[ -s $nginx ]] || "$gen" nginx --lines 100000 --seed 42 -o "$nginx"
    say "training runs"
    local f2b=(--tz UTC --maxretry 5 --findtime 10m --bantime 10m --no-progress)
    "$inst" replay "${f2b[@]}" --filter sshd "$sshd" > /dev/null
    "$inst" replay "${f2b[@]}" --filter 'sshd[mode=aggressive]' "$sshd" > /dev/null
    "$inst" replay --tz UTC --no-progress "$nginx" "$sshd" > /dev/null
    "$inst" replay --no-progress "$repo"/examples/logs/* > /dev/null

    # 3. merge; the file is named by its content, so that a changed profile
    # changes RUSTFLAGS and cargo rebuilds (it does not watch the file itself)
    "$profdata" merge -o "$WORK/merged.profdata" "$raw"
    prof=$WORK/stadtwache-$(sha256sum "$WORK/merged.profdata" | cut -c1-16).profdata
    mv "$WORK/merged.profdata" "$prof"
    find "$WORK" -maxdepth 1 -name 'stadtwache-*.profdata' ! -name "$(basename "$prof")" -delete
}

# the profile is made again unless it came from the same sources, training
# inputs and script (git trees of those paths, and their uncommitted changes):
# the counters differ a little from run to run, and every new profile means a
# full optimised build
paths=(crates Cargo.toml Cargo.lock examples bench/pgo.sh)
stamp="$(cd "$repo" && git rev-parse "${paths[@]/#/HEAD:}" 2>/dev/null | tr '\n' ' ')$(cd "$repo" && git status --porcelain -- "${paths[@]}" 2>/dev/null | sha256sum | cut -c1-16)"
prof=$(find "$WORK" -maxdepth 1 -name 'stadtwache-*.profdata' | head -n 1)
if [[ -n $prof && -f $WORK/stamp && $(cat "$WORK/stamp") == "$stamp" ]]; then
    say "profile of this tree already made: $(basename "$prof")"
else
    make_profile
    echo "$stamp" > "$WORK/stamp"
fi

# 4. optimised build
say "optimised build with $(basename "$prof") (CARGO_TARGET_DIR=$TARGET/pgo-use)"
(cd "$repo" && RUSTFLAGS="-Cprofile-use=$prof" CARGO_TARGET_DIR=$TARGET/pgo-use \
    cargo build --release --quiet -p stadtwache)
echo "$TARGET/pgo-use/release/stadtwache"
