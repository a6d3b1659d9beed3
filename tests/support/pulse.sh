#!/bin/sh
# Start a private PulseAudio server with one null sink, for rtcbot's sound tests and examples.
#
# Idempotent: if the server answers already, nothing is started. Safe as root (CI) and as a user.
# Prints the PULSE_SERVER value to export, e.g.:
#
#     export PULSE_SERVER="$(sh tests/support/pulse.sh)"
#
# `sh tests/support/pulse.sh stop` stops the server this script started.
#
# The null sink "rtcbot_null" is the default sink (what a Speaker plays into) and its monitor
# "rtcbot_null.monitor" is the default source (what a Microphone records): a tone played through
# a Speaker comes back through a Microphone.
set -eu

dir="${RTCBOT_PULSE_DIR:-/tmp/rtcbot-pulse}"
server="unix:$dir/native"

if [ "${1:-}" = "stop" ]; then
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    exit 0
fi

if ! command -v pulseaudio >/dev/null 2>&1; then
    echo "pulse.sh: pulseaudio is not installed (apt-get install -y pulseaudio pulseaudio-utils)" >&2
    exit 2
fi

if PULSE_SERVER="$server" pactl info >/dev/null 2>&1; then
    echo "$server"
    exit 0
fi

mkdir -p "$dir"
chmod 700 "$dir"
cat > "$dir/default.pa" <<PA
load-module module-native-protocol-unix auth-anonymous=1 socket=$dir/native
load-module module-null-sink sink_name=rtcbot_null rate=48000 channels=2 norewinds=1 sink_properties=device.description=rtcbot_null
set-default-sink rtcbot_null
set-default-source rtcbot_null.monitor
PA

# norewinds=1: without it the null sink runs at about half speed for clients asking for a low
# latency (20-50 ms), as sound libraries do (seen with PulseAudio 16.1).
# -n: no default script; -F: ours. --exit-idle-time=-1: stay up while idle.
# XDG_RUNTIME_DIR/HOME point into $dir so that running as root needs no /run/user/0.
XDG_RUNTIME_DIR="$dir" HOME="$dir" PULSE_RUNTIME_PATH="$dir" PULSE_STATE_PATH="$dir" \
    pulseaudio --daemonize=yes --exit-idle-time=-1 --system=false --disallow-exit=yes \
    --use-pid-file=yes --log-target="file:$dir/pulse.log" -n -F "$dir/default.pa" \
    >/dev/null 2>&1 || true

# Wait (bounded: 10 s) until it answers.
i=0
while ! PULSE_SERVER="$server" pactl info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
        echo "pulse.sh: PulseAudio did not start; log:" >&2
        tail -n 20 "$dir/pulse.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.1
done
echo "$server"
