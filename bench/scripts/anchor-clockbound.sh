#!/usr/bin/env bash
# timed beside AWS ClockBound over the same chronyd server, on this host, in one run.
#
#   chronyd S  — `local stratum 1` on 127.0.0.1:$PORT, serving this host's clock (-x: it never
#                touches it), so CLOCK_REALTIME is the truth both bounds are checked against;
#   chronyd C  — a client of S (1 s polls, interleaved), with `maxclockerror` = the drift
#                assumption, its command socket where clock-bound-d looks for it
#                (/var/run/chrony/chronyd.sock);
#   clock-bound-d 2.0.3 (crates.io; its binary is `clockbound`) — reads C's tracking, writes /var/run/clockbound/shm0;
#   timed      — polls S directly as an NTP source (`kind = "ntp"`), same drift assumption;
#   ttbench anchor-clockbound — samples both every 100 ms against CLOCK_REALTIME.
#
# Needs root (the fixed /var/run paths), chronyd, and ClockBound's daemon on PATH (`clockbound`)
# or in $CLOCKBOUND_D:
#   cargo install clock-bound-d --version 2.0.3
# Refuses to run when a chronyd already uses /var/run/chrony/chronyd.sock.
#
# Usage: bench/scripts/anchor-clockbound.sh [seconds] [drift-ppm]   (defaults: 120, 15)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-120}
PPM=${2:-15}
PORT=${PORT:-11123}
CBD=${CLOCKBOUND_D:-$(command -v clockbound || true)}
[ -x "$CBD" ] || { echo "ClockBound's daemon not found: cargo install clock-bound-d --version 2.0.3" >&2; exit 2; }
command -v chronyd >/dev/null || { echo "chronyd not found (apt install chrony)" >&2; exit 2; }
[ -e /var/run/chrony/chronyd.sock ] && { echo "/var/run/chrony/chronyd.sock exists: another chronyd runs" >&2; exit 2; }

cargo build --release -q -p bench -p timed
W=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W" /var/run/chrony/chronyd.sock; }
trap cleanup EXIT
mkdir -p "$W/s" "$W/c" /var/run/chrony /var/run/clockbound
chmod 750 /var/run/chrony  # chronyd refuses a command-socket directory others can enter
chmod 700 "$W/s" "$W/c"

cat > "$W/s/chrony.conf" <<CONF
port $PORT
bindaddress 127.0.0.1
allow 127.0.0.1
local stratum 1
cmdport 0
bindcmdaddress $W/s/chronyd.sock
pidfile $W/s/chronyd.pid
driftfile $W/s/drift
CONF
cat > "$W/c/chrony.conf" <<CONF
server 127.0.0.1 port $PORT minpoll 0 maxpoll 0 iburst xleave
maxclockerror $PPM
port 0
cmdport 0
bindcmdaddress /var/run/chrony/chronyd.sock
pidfile $W/c/chronyd.pid
driftfile $W/c/drift
CONF
chronyd -x -d -u root -f "$W/s/chrony.conf" 2>"$W/s.log" & pids+=($!)
sleep 1
chronyd -x -d -u root -f "$W/c/chrony.conf" 2>"$W/c.log" & pids+=($!)
cat > "$W/timed.toml" <<CONF
listen = "127.0.0.1:17199"
shm-path = "$W/page"
vmclock = "$W/no-vmclock"
max-drift-ppm = $PPM
poll-interval-ms = 1000

[[master]]
addr = "127.0.0.1:$PORT"
kind = "ntp"
CONF
target/release/timed run -c "$W/timed.toml" 2>"$W/timed.log" & pids+=($!)
# ClockBound needs chronyd synchronized; give both a warm-up.
sleep 20
[ -S /var/run/chrony/chronyd.sock ] || { echo "the chronyd client has no command socket:" >&2; cat "$W/c.log" >&2; exit 1; }
"$CBD" --max-drift-rate "$PPM" --disable-clock-disruption-support >"$W/cbd.log" 2>&1 & pids+=($!)
sleep 10
echo "chronyd client:" >&2
chronyc -h /var/run/chrony/chronyd.sock -n tracking | grep -E "Root delay|Root dispersion|System time|Leap" >&2 || true
target/release/ttbench anchor-clockbound --page "$W/page" --duration "$SECS"
