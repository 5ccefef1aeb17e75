#!/usr/bin/env bash
# peers/s2_compare.sh: s2-lite's `s2 bench` beside `inlet bench`, both writing 1 KiB records
# (rows of one column) to a local directory for the same time, and the ratio Inlet/s2-lite of
# throughput and ack latency. s2-lite and the s2 CLI are built with `cargo install` into a
# scratch folder (never a dependency of this repo); nothing is installed anywhere else.
#
#   peers/s2_compare.sh                        # scratch folder /tmp/inlet-peers
#   INLET_PEERS_DIR=/var/tmp/peers INLET_PEERS_DURATION=20 peers/s2_compare.sh
#
# Settings (environment):
#   INLET_PEERS_DIR              scratch folder: the cargo root, build dir, data dirs, logs [/tmp/inlet-peers]
#   INLET_PEERS_DURATION         seconds each side writes [8]
#   INLET_PEERS_S2_TARGET_MIBPS  `s2 bench --target-mibps`: its write rate; the default is far
#                                above what one machine sustains, so s2 writes as fast as it can [1024]
#   INLET_PEERS_PRODUCERS        Inlet producers, each with one append of 1000 rows in flight;
#                                5 matches the 5 MiB of unacknowledged records the s2 producer keeps [5]
#   INLET_BIN                    the inlet binary [target/release/inlet, built if missing]
#   INLET_PEERS_ALLOW_WILDCARD=1 run s2-lite in this network namespace when `unshare` is not
#                                available (s2-lite 0.43.4 always listens on 0.0.0.0, see below)
#
# Both sides run on this machine, so the figures depend on it (cores, disk); the ratio is the
# point. Exit status: 0 with both sides measured; 3 when the inlet binary predates
# `inlet bench --produce-row-bytes` (the s2 side is still printed); anything else is an error.
set -euo pipefail

S2_LITE_VERSION=0.43.4
S2_CLI_VERSION=0.43.4 # s2-cli 0.43.4 depends on s2-lite 0.43 and pins 0.43.4 in its Cargo.lock
RECORD_BYTES=1024
BATCH_ROWS=1000 # the s2 producer's batches: at most 1000 records (and 1 MiB)
LINGER=5ms      # the s2 producer's linger, and s2-lite's flush interval on a local root
BASIN=inlet-peers
INLET_ROW_FLAG=--produce-row-bytes # rows of one binary column of N random bytes

SCRATCH=${INLET_PEERS_DIR:-/tmp/inlet-peers}
DURATION=${INLET_PEERS_DURATION:-8}
S2_TARGET_MIBPS=${INLET_PEERS_S2_TARGET_MIBPS:-1024}
INLET_PRODUCERS=${INLET_PEERS_PRODUCERS:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INLET_BIN=${INLET_BIN:-$ROOT/target/release/inlet}
S2_SERVER=$SCRATCH/bin/server # the s2-lite crate's binary is called `server`
S2_CLI=$SCRATCH/bin/s2

log() { printf 's2_compare: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for setting in DURATION S2_TARGET_MIBPS INLET_PRODUCERS; do
    [[ ${!setting} =~ ^[1-9][0-9]*$ ]] || die "$setting must be a positive whole number, not '${!setting}'"
done

# ---------------------------------------------------------------------------------------------
# The s2 side, run by the outer script as `s2_compare.sh --s2-phase OUT_LOG` inside a private
# network namespace: s2-lite 0.43.4 has no bind-address flag and always listens on
# 0.0.0.0:<port>, so the namespace (loopback only) is what keeps it off every other interface.
# With --pid --kill-child the namespace's processes die with the script, whatever happens.
server_pid=
# shellcheck disable=SC2329 # run by the EXIT trap
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
s2_phase() {
    local out=$1 data port
    trap stop_server EXIT
    if [[ ${S2_IN_NETNS:-} == 1 ]]; then
        # A new network namespace starts with its loopback down: SIOCGIFFLAGS, SIOCSIFFLAGS | IFF_UP.
        python3 -c 'import fcntl, socket, struct
s = socket.socket()
flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 1))' ||
            die "cannot bring up the loopback interface of the network namespace"
    fi
    # The s2 CLI reads its config and credential store under HOME: keep it in the scratch
    # folder, and skip its update check.
    export HOME=$SCRATCH/s2-home XDG_CONFIG_HOME=$SCRATCH/s2-home/.config
    export XDG_CACHE_HOME=$SCRATCH/s2-home/.cache XDG_DATA_HOME=$SCRATCH/s2-home/.local/share
    export S2_NO_UPDATE_CHECK=1
    mkdir -p "$HOME"

    data=$SCRATCH/s2-data
    rm -rf "$data"
    mkdir -p "$data"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    NO_COLOR=1 RUST_LOG=warn "$S2_SERVER" --local-root "$data" --port "$port" --no-dashboard \
        >"$SCRATCH/s2-server.log" 2>&1 &
    server_pid=$!

    export S2_ACCOUNT_ENDPOINT=http://127.0.0.1:$port S2_BASIN_ENDPOINT=http://127.0.0.1:$port
    export S2_ACCESS_TOKEN=ignored NO_COLOR=1
    local tries=0
    until "$S2_CLI" list-basins >/dev/null 2>&1; do
        kill -0 "$server_pid" 2>/dev/null || die "s2-lite exited; see $SCRATCH/s2-server.log"
        ((++tries <= 150)) || die "s2-lite did not answer on 127.0.0.1:$port within 30 s"
        sleep 0.2
    done
    log "s2-lite answers on 127.0.0.1:$port (data in $data)"
    "$S2_CLI" create-basin "s2://$BASIN" >"$SCRATCH/s2-create-basin.log" 2>&1 ||
        die "s2 create-basin failed: $(cat "$SCRATCH/s2-create-basin.log")"

    # One producer on one stream (s2 bench has no producer count), a live reader beside it,
    # then a catch-up read of everything written (no delay before it: -w 0s).
    log "s2 bench: ${RECORD_BYTES}-byte records, ${DURATION} s, target ${S2_TARGET_MIBPS} MiB/s"
    if ! "$S2_CLI" bench "s2://$BASIN" --record-size "$RECORD_BYTES" \
        --target-mibps "$S2_TARGET_MIBPS" --duration "${DURATION}s" --catchup-delay 0s \
        >"$out" 2>&1; then
        cat "$out" >&2
        die "s2 bench failed"
    fi
}

if [[ ${1:-} == --s2-phase ]]; then
    s2_phase "$2"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is needed (https://rustup.rs)"
command -v python3 >/dev/null || die "python3 is needed to read the results"
mkdir -p "$SCRATCH"
SCRATCH=$(cd "$SCRATCH" && pwd)
export SCRATCH DURATION S2_TARGET_MIBPS
started=$SECONDS

# 1. s2-lite and the s2 CLI, into $SCRATCH/bin (skipped when that version is there already).
installed() { cargo install --list --root "$SCRATCH" 2>/dev/null | grep -qx "$1 v$2:"; }
install_crate() {
    local crate=$1 version=$2
    if installed "$crate" "$version"; then
        log "$crate $version already in $SCRATCH/bin"
        return
    fi
    log "installing $crate $version into $SCRATCH (a release build: many minutes on few cores; log $SCRATCH/install-$crate.log)"
    local t0=$SECONDS
    if ! CARGO_TARGET_DIR=$SCRATCH/cargo-target nice -n 10 \
        cargo install --locked --root "$SCRATCH" --version "$version" "$crate" \
        >"$SCRATCH/install-$crate.log" 2>&1; then
        tail -n 30 "$SCRATCH/install-$crate.log" >&2
        die "cargo install $crate $version failed"
    fi
    log "installed $crate $version in $((SECONDS - t0)) s"
}
install_crate s2-cli "$S2_CLI_VERSION"
install_crate s2-lite "$S2_LITE_VERSION"
[[ -x $S2_SERVER && -x $S2_CLI ]] || die "expected $S2_SERVER and $S2_CLI after cargo install"
rm -rf "$SCRATCH/cargo-target" # the build directory both installs shared (~2 GB)

# The inlet binary, built only when missing.
if [[ ! -x $INLET_BIN ]]; then
    log "building $INLET_BIN (cargo build --release -p inlet)"
    (cd "$ROOT" && cargo build --release -p inlet)
fi

# 2. The s2 side, in its own network namespace when possible.
S2_OUT=$SCRATCH/s2-bench.log
INLET_JSON=$SCRATCH/inlet-bench.json
rm -f "$S2_OUT" "$INLET_JSON"
phase_pid=
# shellcheck disable=SC2329 # run by the EXIT trap
cleanup() {
    # unshare --fork ignores SIGTERM while it waits; SIGKILL takes it and (--kill-child) the
    # namespace's first process with it, and the kernel then ends every process of the namespace.
    if [[ -n $phase_pid ]]; then kill -KILL "$phase_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NETNS=(unshare --user --map-root-user --net --pid --kill-child)
if "${NETNS[@]}" true 2>/dev/null; then
    isolation="s2-lite in a private network namespace (it listens on 0.0.0.0; only loopback exists there)"
    S2_IN_NETNS=1 "${NETNS[@]}" "$BASH" "$0" --s2-phase "$S2_OUT" &
elif [[ ${INLET_PEERS_ALLOW_WILDCARD:-} == 1 ]]; then
    isolation="s2-lite in this network namespace, listening on 0.0.0.0 (INLET_PEERS_ALLOW_WILDCARD=1)"
    log "warning: unshare is not available; s2-lite listens on 0.0.0.0 for the run"
    "$BASH" "$0" --s2-phase "$S2_OUT" &
else
    die "s2-lite 0.43.4 always listens on 0.0.0.0 and \`unshare --user --net\` is not available to confine it; set INLET_PEERS_ALLOW_WILDCARD=1 to run it anyway"
fi
phase_pid=$!
wait "$phase_pid"
phase_pid=

# 3. The Inlet side: the same record size, batch, linger and duration on a local directory.
inlet_status=ran
if "$INLET_BIN" bench --help 2>/dev/null | grep -qE -- "(^|[[:space:]])$INLET_ROW_FLAG([[:space:]]|$)"; then
    rm -rf "$SCRATCH/inlet-store"
    log "inlet bench: produce, $INLET_ROW_FLAG $RECORD_BYTES, $BATCH_ROWS rows per append, linger $LINGER, $INLET_PRODUCERS producers, ${DURATION} s"
    "$INLET_BIN" bench --sections produce --store "$SCRATCH/inlet-store" \
        "$INLET_ROW_FLAG" "$RECORD_BYTES" --batch-rows "$BATCH_ROWS" --linger "$LINGER" \
        --produce-producers "$INLET_PRODUCERS" --duration "${DURATION}s" --rows 1000000000 \
        --json "$INLET_JSON" >"$SCRATCH/inlet-bench.log" 2>&1 ||
        {
            tail -n 30 "$SCRATCH/inlet-bench.log" >&2
            die "inlet bench failed"
        }
else
    inlet_status=missing-flag
fi

# 4. The table.
versions="s2-lite $("$S2_SERVER" --version 2>/dev/null | awk '{print $2}'), s2 CLI $("$S2_CLI" --version 2>/dev/null | awk '{print $2}'), $("$INLET_BIN" --version) ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'unknown commit'))"
status=0
python3 - "$S2_OUT" "$INLET_JSON" "$inlet_status" "$DURATION" "$RECORD_BYTES" "$versions" "$isolation" "$INLET_ROW_FLAG" <<'PY' || status=$?
import json, os, re, sys

s2_log, inlet_json, inlet_status, duration, record_bytes, versions, isolation, row_flag = sys.argv[1:]
text = re.sub(r"\x1b\[[0-9;]*m", "", open(s2_log).read())

def to_ms(v):
    m = re.fullmatch(r"([0-9.]+)(ns|us|ms|s)", v)
    if not m:
        sys.exit(f"s2_compare: cannot read the latency '{v}' in {s2_log}")
    return float(m[1]) * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]

write = re.search(r"^Write: ([0-9.]+) MiB/s, ([0-9]+) records/s \(([0-9]+) bytes, ([0-9]+) records in ([0-9.]+)s\)", text, re.M)
if not write:
    sys.exit(f"s2_compare: no 'Write:' line in {s2_log}")
lat = {}
for key in ("p50", "p99"):
    # The ack table comes first on each line (side by side), or first of the two (stacked).
    m = re.search(rf"^{key}\s*:\s*([0-9.]+[a-z]+)", text, re.M)
    if not m:
        sys.exit(f"s2_compare: no ack {key} in {s2_log}")
    lat[key] = to_ms(m[1])
s2 = {"mb_per_s": float(write[1]) * 1.048576, "p50": lat["p50"], "p99": lat["p99"],
      "what": f"{int(write[4]):,} records in {float(write[5]):.2f} s, 1 producer"}

inlet = None
if inlet_status == "ran":
    d = json.load(open(inlet_json))
    run = d["produce"][0]
    # settings.columns and settings.row_ipc_bytes describe the wide rows whatever the flag, so
    # check the flag's echo and the run's own bytes per row.
    if d["settings"].get("produce_row_bytes") != int(record_bytes) or not run["rows"]:
        sys.exit(f"s2_compare: {inlet_json} is not a run of {record_bytes}-byte rows")
    row = run["ipc_bytes"] / run["rows"]
    inlet = {"mb_per_s": run["mb_per_s"], "p50": run["ack_latency"]["p50_ms"],
             "p99": run["ack_latency"]["p99_ms"],
             "what": f"{run['rows']:,} rows in {run['seconds']:.2f} s, {run['producers']} producers, "
                     f"{run['batch_rows']} rows per append, {row:.0f} B of Arrow IPC a row"}

def cell(v):
    return "n/a" if v is None else f"{v:.2f}"

print()
print(f"{record_bytes}-byte records, {duration} s each, local directory stores, {os.cpu_count()} cores")
print(f"{'':<22}{'s2-lite':>12}{'inlet':>12}{'inlet/s2-lite':>15}")
for name, key in (("throughput MB/s", "mb_per_s"), ("ack p50 ms", "p50"), ("ack p99 ms", "p99")):
    a = s2[key]
    b = inlet[key] if inlet else None
    ratio = f"{b / a:.2f}x" if b is not None and a else "n/a"
    print(f"{name:<22}{cell(a):>12}{cell(b):>12}{ratio:>15}")
print()
print(f"MB = 10^6 bytes. s2: metered record bytes ({record_bytes} a record incl. its 22 B of header and")
print("overhead), its MiB/s times 1.048576, ack latency per record, a live reader beside the")
print("writer; inlet: Arrow IPC bytes, ack latency per append, no reader.")
print(f"s2-lite: {s2['what']}")
print(f"inlet:   {inlet['what'] if inlet else 'not run'}")
print(f"versions: {versions}")
print(f"isolation: {isolation}")
if not inlet:
    print()
    print(f"inlet side NOT RUN: this inlet binary's `bench` has no {row_flag} (rows of one")
    print("binary column of N bytes instead of the 20-column wide rows); rebuild it.")
    sys.exit(3)
PY
rm -rf "$SCRATCH/s2-data" "$SCRATCH/inlet-store" # what both wrote: a few GB
log "done in $((SECONDS - started)) s; logs in $SCRATCH"
exit "$status"
