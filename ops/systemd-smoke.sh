#!/usr/bin/env bash
# ops/systemd-smoke.sh — prove that docs/operations.md's Debian install gives a running, hardened, observable
# service: boot Debian with a real systemd (systemd-nspawn, a throw-away copy of a debootstrapped tree), follow the
# documented install steps literally inside it, then check `systemctl start/status/reload/stop`, Type=notify
# READY/RELOADING/STOPPING, watchdog pings and a watchdog kill, the journal fields, `systemd-analyze security`,
# /healthz, /readyz, the templated unit, exit status 2 without a restart loop, and a port below 1024.
#
# NOT run by CI: needs root, debootstrap and systemd-nspawn (installed with apt-get when missing), network access
# to the Debian mirror and PyPI, and takes a few minutes (the first run also debootstraps, ~1 minute). The
# container shares the host's network: 127.0.0.1 ports 8317, 8318, 444 and 18317 must be free.
#
#   sudo ops/systemd-smoke.sh             # exit 0 when every check passed; the log is printed as it runs
#   sudo ops/systemd-smoke.sh --rebuild   # debootstrap the base tree again
#   sudo ops/systemd-smoke.sh --keep      # keep the work directory (the log, the inside script)
#
# Settings (environment): SMOKE_MACHINE (base tree, default /var/lib/machines/proxyd-test), SMOKE_SUITE
# (bookworm), SMOKE_MIRROR (the Debian mirror apt uses here), SMOKE_PIP_CERT (a CA bundle for pip, e.g. behind a
# TLS-intercepting proxy; default: `cert` from /etc/pip.conf when set), SMOKE_SOURCE (the git repository to
# install from, default: this one). What is installed is that repository's committed HEAD (`git clone`, as a user
# would), not uncommitted edits: to try those, commit them in a scratch clone and point SMOKE_SOURCE at it.
#
# Output lines: "PASS …" and "FAIL …" are checks; "GAP …" is a known shortfall that does not fail the run.
set -uo pipefail

SELF=$(readlink -f "$0")
SMOKE_UPSTREAM_PORT=18317
SMOKE_CLIENT_KEY=smoke-client-key-0123456789
SMOKE_MANAGEMENT_KEY=smoke-management-key-0123456789

# =============================================================================================== inside
# Runs inside the booted container, as root (so the docs' `sudo` is dropped; `sudo -u proxyd` is `runuser -u
# proxyd --`, which needs no sudo package).

PASSES=0
FAILS=0
GAPS=0
step() { printf '\n== %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }
pass() { PASSES=$((PASSES + 1)); printf 'PASS %s\n' "$*"; }
fail() { FAILS=$((FAILS + 1)); printf 'FAIL %s\n' "$*"; }
gap() { GAPS=$((GAPS + 1)); printf 'GAP  %s\n' "$*"; }
check() {  # check DESCRIPTION COMMAND...: PASS when the command succeeds
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
prop() { systemctl show "$1" -p "$2" --value; }
cursor=/run/proxyd-smoke.cursor
new_journal() { journalctl --no-pager --cursor-file="$cursor" "$@"; }  # entries since the last call
wait_for() {  # wait_for SECONDS COMMAND...: retry until the command succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}
chat() {  # chat PORT KEY: one chat completion; prints the status code, keeps headers and body in /run
    curl -s --max-time 20 -o /run/smoke.body -D /run/smoke.headers -w '%{http_code}' \
        "http://127.0.0.1:$1/v1/chat/completions" -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        -d '{"model": "smoke", "messages": [{"role": "user", "content": "ping"}]}'
}

inside() {
    export DEBIAN_FRONTEND=noninteractive
    [[ -n ${SMOKE_PIP_CERT:-} ]] && export PIP_CERT=$SMOKE_PIP_CERT
    . /etc/os-release
    step "system: $PRETTY_NAME, $(systemctl --version | head -1), kernel $(uname -r), virtualization $(systemd-detect-virt)"
    journalctl --no-pager -n0 --cursor-file="$cursor" >/dev/null
    systemd-analyze log-level debug  # PID 1 then logs every sd_notify message it receives

    step "0. the source tree"
    run git clone -q /mnt/proxyd-src /usr/local/src/proxyd || { fail "git clone"; return; }
    cd /usr/local/src/proxyd || return
    echo "source: $(git log -1 --format='%h %s' | cut -c1-100)"

    step "1. Python and a dedicated system user"
    run apt-get update -qq || fail "apt-get update"
    run apt-get install -y -qq python3 python3-venv >/dev/null || fail "apt-get install python3 python3-venv"
    run adduser --system --group --home /var/lib/proxyd --no-create-home proxyd 2>&1 | grep -v Warning
    check "user proxyd exists ($(id proxyd 2>&1))" id proxyd

    step "2. proxyd in a venv"
    run python3 -m venv /opt/proxyd || fail "python3 -m venv"
    run /opt/proxyd/bin/pip install -q . || { fail "pip install ."; return; }
    check "proxyd --version: $(/opt/proxyd/bin/proxyd --version 2>&1)" /opt/proxyd/bin/proxyd --version

    step "3. the config directory belongs to proxyd"
    run install -d -o proxyd -g proxyd -m 0750 /etc/proxyd
    run install -o proxyd -g proxyd -m 0640 etc/config.yaml /etc/proxyd/config.yaml
    # The edit the docs leave to sudoedit: client key, management key, auth-dir, one provider (a local fake
    # OpenAI-compatible upstream, since the smoke test reaches no real provider).
    sed -i -e "s|^auth-dir: .*|auth-dir: /var/lib/proxyd/auths|" \
        -e "s|^api-keys: \[\]|api-keys: [\"$SMOKE_CLIENT_KEY\"]|" \
        -e "s|^  secret-key: \"\"|  secret-key: \"$SMOKE_MANAGEMENT_KEY\"|" /etc/proxyd/config.yaml
    cat >>/etc/proxyd/config.yaml <<EOF
openai-compatibility:
  - name: "smoke"
    base-url: "http://127.0.0.1:$SMOKE_UPSTREAM_PORT/v1"
    api-key-entries:
      - api-key: "sk-smoke-upstream-0123456789"
    models:
      - name: "smoke-model"
        alias: "smoke"
EOF
    echo "edited: $(grep -c . /etc/proxyd/config.yaml) lines; auth-dir, api-keys, secret-key, openai-compatibility"
    check "check-config as proxyd: $(runuser -u proxyd -- /opt/proxyd/bin/proxyd check-config /etc/proxyd/config.yaml 2>&1)" \
        runuser -u proxyd -- /opt/proxyd/bin/proxyd check-config /etc/proxyd/config.yaml
    systemd-run -q --unit=fake-upstream python3 /mnt/smoke/fake_upstream.py "$SMOKE_UPSTREAM_PORT"

    step "4. the unit"
    run install -m 0644 systemd/proxyd.service /etc/systemd/system/proxyd.service
    run systemctl daemon-reload
    local started=$SECONDS
    if run systemctl enable --now proxyd 2>&1; then pass "systemctl enable --now proxyd returned 0 ($((SECONDS - started)) s)"
    else fail "systemctl enable --now proxyd"; fi

    step "5. check"
    systemctl status proxyd --no-pager -n0 | sed -n '1,8p'
    local pid
    pid=$(prop proxyd MainPID)
    check "active (running): $(prop proxyd ActiveState) ($(prop proxyd SubState))" \
        test "$(prop proxyd ActiveState)/$(prop proxyd SubState)" = active/running
    check "Type=$(prop proxyd Type), Status: \"$(prop proxyd StatusText)\"" \
        test "$(prop proxyd Type)/$(prop proxyd StatusText)" = "notify/serving http on 127.0.0.1:8317"
    local notes
    notes=$(new_journal -u proxyd -o cat | grep -E "Got notification message from PID $pid|Started proxyd")
    echo "$notes" | sed 's/^/  /'
    check "READY=1 from the main process, then systemd's 'Started'" \
        bash -c 'grep -A50 "READY=1, STATUS=serving" <<<"$1" | grep -q "Started proxyd.service"' _ \
        "$notes"
    check "/healthz: $(curl -s --max-time 5 127.0.0.1:8317/healthz)" \
        test "$(curl -s --max-time 5 127.0.0.1:8317/healthz)" = '{"status": "ok"}'
    check "/readyz: $(curl -s --max-time 5 127.0.0.1:8317/readyz)" \
        test "$(curl -s --max-time 5 127.0.0.1:8317/readyz)" = '{"status": "ready", "credentials": 1}'
    local code rid
    code=$(chat 8317 "$SMOKE_CLIENT_KEY")
    rid=$(sed -n 's/^X-Request-Id: *//Ip' /run/smoke.headers | tr -d '\r')
    check "POST /v1/chat/completions through the fake upstream: $code, X-Request-Id $rid, $(jq -c .choices[0].message /run/smoke.body 2>&1)" \
        test "$code/$(jq -r .choices[0].message.content /run/smoke.body 2>/dev/null)" = 200/pong
    check "a wrong client key: $(chat 8317 wrong-key)" test "$(chat 8317 wrong-key)" = 401
    local metrics
    metrics=$(curl -s --max-time 5 -H "Authorization: Bearer $SMOKE_MANAGEMENT_KEY" 127.0.0.1:8317/metrics)
    check "/metrics with the management key: $(grep -c '^proxyd_' <<<"$metrics") series lines, e.g. $(grep -m1 '^proxyd_requests_total' <<<"$metrics")" \
        grep -q '^proxyd_requests_total' <<<"$metrics"

    step "hardening in effect"
    echo "  $(ps -o user=,pid=,cmd= -p "$pid")"
    grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' "/proc/$pid/status" | sed 's/^/  /' | tr -s '\t' ' '
    check "runs as proxyd" test "$(ps -o user= -p "$pid")" = proxyd
    check "NoNewPrivs 1" grep -qE '^NoNewPrivs:\s+1$' "/proc/$pid/status"
    check "seccomp mode 2 (filter)" grep -qE '^Seccomp:\s+2' "/proc/$pid/status"
    check "CapEff and CapBnd empty" test "$(grep -cE '^Cap(Eff|Bnd):\s+0+$' "/proc/$pid/status")" = 2
    local mounts
    mounts=$(awk '{print $5, substr($6, 1, 2)}' "/proc/$pid/mountinfo" | grep -E '^/(etc/proxyd|var/lib/proxyd|usr|etc|home|tmp) |^/ ')
    echo "$mounts" | sed 's/^/  mount: /'
    check "/ read-only, /etc/proxyd and /var/lib/proxyd writable (ProtectSystem=strict + ReadWritePaths)" \
        grep -qx '/ ro' <<<"$mounts"
    grep -qx '/etc/proxyd rw' <<<"$mounts" && grep -qx '/var/lib/proxyd rw' <<<"$mounts" \
        || fail "ReadWritePaths not mounted read-write"
    ls -l /etc/proxyd | sed 's/^/  /'
    check "the daemon rewrote config.yaml (plain-text secret-key replaced by its bcrypt hash) under ProtectSystem=strict" \
        grep -qE '^  secret-key: "?\$2[aby]\$' /etc/proxyd/config.yaml
    check "config.yaml still owned by proxyd" test "$(stat -c %U /etc/proxyd/config.yaml)" = proxyd
    check "log files under the state directory: $(stat -c '%n %U %a' /var/lib/proxyd/logs 2>&1), none in /etc/proxyd" \
        test -d /var/lib/proxyd/logs -a ! -e /etc/proxyd/logs
    local exposure
    exposure=$(systemd-analyze security proxyd --no-pager 2>&1 | sed -n 's/.*Overall exposure level for proxyd.service: //p')
    systemd-analyze security proxyd --no-pager 2>&1 | grep '^✗' | cut -c1-60 | sed 's/^/  /'
    check "systemd-analyze security proxyd: $exposure" awk -v e="${exposure%% *}" 'BEGIN { exit !(e != "" && e <= 2.0) }'
    check "systemd-analyze verify proxyd.service: $(systemd-analyze verify /etc/systemd/system/proxyd.service 2>&1 | head -3)" \
        systemd-analyze verify /etc/systemd/system/proxyd.service

    step "journal"
    local entry
    entry=$(journalctl -u proxyd -o json --no-pager | jq -c --arg rid "$rid" \
        'select((.MESSAGE | tostring | contains($rid)) and (.MESSAGE | tostring | contains("\"request\"")))' | tail -1)
    echo "  journalctl -u proxyd -o json (the request line, journald's bookkeeping fields left out):"
    jq 'with_entries(select(.key | test("^(__|_BOOT|_MACHINE|_CAP|_CMDLINE|_EXE|_COMM|_SYSTEMD_INVOCATION|_STREAM|_HOSTNAME|_RUNTIME|_SOURCE|SYSLOG_FACILITY)") | not))' \
        <<<"$entry" | sed 's/^/  /'
    check "the request line is in the journal under _SYSTEMD_UNIT=proxyd.service with PRIORITY=6" \
        test "$(jq -r '._SYSTEMD_UNIT + " " + .PRIORITY' <<<"$entry")" = "proxyd.service 6"
    if [[ $(jq -r '.REQUEST_ID // empty' <<<"$entry") == "$rid" ]]; then
        pass "REQUEST_ID, STATUS, LATENCY_MS are journal fields: journalctl -u proxyd REQUEST_ID=$rid -o cat:"
        journalctl -u proxyd "REQUEST_ID=$rid" -o cat --no-pager | sed 's/^/  /'
    else
        gap "request fields are inside MESSAGE only (_TRANSPORT=$(jq -r ._TRANSPORT <<<"$entry")): no REQUEST_ID/MODEL/STATUS journal fields"
    fi

    step "watchdog pings"
    echo "  WatchdogUSec=$(prop proxyd WatchdogUSec)"
    local before after
    before=$(prop proxyd WatchdogTimestampMonotonic)
    sleep 16
    after=$(prop proxyd WatchdogTimestampMonotonic)
    check "WatchdogTimestamp advanced by $(((after - before) / 1000)) ms in 16 s (pings every 15 s)" test "$after" -gt "$before"
    notes=$(new_journal -u proxyd -o cat | grep -F "Got notification message from PID $pid (WATCHDOG=1)")
    echo "$notes" | tail -2 | sed 's/^/  /'
    check "WATCHDOG=1 datagrams from the main process" test -n "$notes"

    step "reload (SIGHUP)"
    sed -i "s|^api-keys: \[\"$SMOKE_CLIENT_KEY\"\]|api-keys: [\"$SMOKE_CLIENT_KEY\", \"smoke-second-key-0123456789\"]|" /etc/proxyd/config.yaml
    check "systemctl reload proxyd returned 0" run systemctl reload proxyd
    notes=$(new_journal -u proxyd -o cat | grep -E "Got notification message from PID $pid \((RELOADING|READY)|Reloaded|Reloading|Changed (running|reload)")
    echo "$notes" | sed 's/^/  /'
    check "RELOADING=1 (with MONOTONIC_USEC) then READY=1" \
        bash -c 'grep -A50 "RELOADING=1, MONOTONIC_USEC=" <<<"$1" | grep -q "READY=1"' _ "$notes"
    check "same main PID after reload ($(prop proxyd MainPID))" test "$(prop proxyd MainPID)" = "$pid"
    check "the key added before the reload works: $(chat 8317 smoke-second-key-0123456789)" \
        test "$(chat 8317 smoke-second-key-0123456789)" = 200

    step "watchdog kill and restart (drop-in WatchdogSec=3s, main process stopped with SIGSTOP)"
    mkdir -p /run/systemd/system/proxyd.service.d
    printf '[Service]\nWatchdogSec=3\nTimeoutAbortSec=3\n' >/run/systemd/system/proxyd.service.d/smoke-watchdog.conf
    systemctl daemon-reload && systemctl restart proxyd
    local stuck restarts
    stuck=$(prop proxyd MainPID)
    restarts=$(prop proxyd NRestarts)
    if [[ ! $stuck =~ ^[1-9][0-9]*$ ]]; then  # `kill -STOP 0` would stop this script's own process group
        fail "no main process to stop (MainPID=$stuck)"
        return
    fi
    run kill -STOP "$stuck"
    if wait_for 30 bash -c '[[ $(systemctl show proxyd -p NRestarts --value) -gt $1 && $(systemctl is-active proxyd) == active ]]' _ "$restarts"; then
        pass "killed and restarted: PID $stuck -> $(prop proxyd MainPID), NRestarts $restarts -> $(prop proxyd NRestarts)"
    else
        fail "no watchdog restart (state $(prop proxyd ActiveState), NRestarts $(prop proxyd NRestarts))"
    fi
    new_journal -u proxyd -o cat | grep -E "Watchdog timeout|Killing process|Main process exited|Scheduled restart|Started proxyd" | sed 's/^/  /'
    rm /run/systemd/system/proxyd.service.d/smoke-watchdog.conf
    systemctl daemon-reload && systemctl restart proxyd
    pid=$(prop proxyd MainPID)

    step "an upstream failure in the journal (the fake upstream stopped)"
    run systemctl stop fake-upstream
    code=$(chat 8317 "$SMOKE_CLIENT_KEY")
    echo "  with the upstream down: $code $(head -c 200 /run/smoke.body)"
    echo "  journalctl -u proxyd -p warning -o cat:"
    journalctl -u proxyd -p warning -o cat --no-pager | tail -3 | cut -c1-400 | sed 's/^/  /'
    check "upstream failure logged at warning (PRIORITY=4) with the model and credential" \
        bash -c "journalctl -u proxyd PRIORITY=4 -o cat --no-pager | grep -F '\"upstream attempt failed\"' | grep -F '\"model\"' | grep -qF credential"
    local fields
    fields=$(journalctl -u proxyd PRIORITY=4 MODEL=smoke -o json --no-pager | jq -c '{EVENT, MODEL, CREDENTIAL, STATUS}' | tail -1)
    [[ -n $fields ]] && pass "journalctl -u proxyd PRIORITY=4 MODEL=smoke -o json: $fields"


    step "a start-up error exits 2 and is not restarted in a loop (templated unit, invalid config)"
    run install -m 0644 systemd/proxyd@.service /etc/systemd/system/proxyd@.service
    printf 'port: "not a port"\n' | install -o proxyd -g proxyd -m 0640 /dev/stdin /etc/proxyd/broken.yaml
    systemctl daemon-reload
    run systemctl start proxyd@broken 2>&1 | sed 's/^/  /'
    sleep 5
    echo "  $(journalctl -u proxyd@broken -o cat --no-pager | grep -m1 'cannot start\|problem\|invalid' | cut -c1-300)"
    check "exit status $(prop proxyd@broken ExecMainStatus), state $(prop proxyd@broken ActiveState), NRestarts $(prop proxyd@broken NRestarts) after 5 s" \
        test "$(prop proxyd@broken ExecMainStatus)/$(prop proxyd@broken ActiveState)/$(prop proxyd@broken NRestarts)" = 2/failed/0

    step "several instances: proxyd@work"
    cat >/run/work.yaml <<EOF
host: "127.0.0.1"
port: 8318
auth-dir: /var/lib/proxyd/work/auths
api-keys: ["$SMOKE_CLIENT_KEY"]
EOF
    run install -o proxyd -g proxyd -m 0640 /run/work.yaml /etc/proxyd/work.yaml
    check "systemctl enable --now proxyd@work" run systemctl enable --now proxyd@work
    check "proxyd@work: $(prop proxyd@work SubState), \"$(prop proxyd@work StatusText)\", /healthz $(curl -s --max-time 5 127.0.0.1:8318/healthz)" \
        test "$(curl -s --max-time 5 127.0.0.1:8318/healthz)" = '{"status": "ok"}'
    check "state directory $(stat -c '%n %U %a' /var/lib/proxyd/work)" test "$(stat -c %U /var/lib/proxyd/work)" = proxyd
    check "systemctl reload proxyd@work" run systemctl reload proxyd@work
    check "systemctl stop proxyd@work" run systemctl stop proxyd@work
    systemctl reset-failed proxyd@broken

    step "a port below 1024 needs the documented drop-in"
    sed 's/^port: 8318/port: 444/' /run/work.yaml | install -o proxyd -g proxyd -m 0640 /dev/stdin /etc/proxyd/low.yaml
    systemctl start proxyd@low 2>/dev/null
    echo "  without it: $(journalctl -u proxyd@low -o cat --no-pager | grep -m1 'cannot start' | cut -c1-200)"
    check "without the drop-in: refused (exit $(prop proxyd@low ExecMainStatus))" test "$(prop proxyd@low ExecMainStatus)" = 2
    systemctl reset-failed proxyd@low
    mkdir -p /etc/systemd/system/proxyd@low.service.d
    printf '[Service]\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n' \
        >/etc/systemd/system/proxyd@low.service.d/port.conf
    systemctl daemon-reload
    check "with CAP_NET_BIND_SERVICE: $(systemctl start proxyd@low 2>&1; prop proxyd@low SubState), /healthz on 444: $(curl -s --max-time 5 127.0.0.1:444/healthz)" \
        test "$(curl -s --max-time 5 127.0.0.1:444/healthz)" = '{"status": "ok"}'
    systemctl stop proxyd@low

    step "stop"
    new_journal >/dev/null
    started=$SECONDS
    check "systemctl stop proxyd returned 0 ($((SECONDS - started)) s)" run systemctl stop proxyd
    check "Result=$(prop proxyd Result), exit status $(prop proxyd ExecMainStatus), $(prop proxyd ActiveState)" \
        test "$(prop proxyd Result)/$(prop proxyd ExecMainStatus)/$(prop proxyd ActiveState)" = success/0/inactive
    notes=$(new_journal -u proxyd -o cat | grep -E "STOPPING=1|\"stopped\"|Deactivated|Stopped")
    echo "$notes" | cut -c1-200 | sed 's/^/  /'
    check "STOPPING=1 sent, then 'stopped'" grep -q "STOPPING=1" <<<"$notes"
    systemd-analyze log-level info

    printf '\n== %d passed, %d failed, %d gaps\n' "$PASSES" "$FAILS" "$GAPS"
    ((FAILS == 0))
}

if [[ ${1:-} == --inside ]]; then
    inside
    exit $?
fi

# ================================================================================================= host

KEEP=0
REBUILD=0
for arg in "$@"; do
    case $arg in
        --keep) KEEP=1 ;;
        --rebuild) REBUILD=1 ;;
        *) echo "usage: $0 [--keep] [--rebuild]" >&2; exit 64 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "needs root (debootstrap, systemd-nspawn)" >&2; exit 1; }

REPO=${SMOKE_SOURCE:-$(cd "$(dirname "$SELF")/.." && pwd)}
MACHINE=${SMOKE_MACHINE:-/var/lib/machines/proxyd-test}
SUITE=${SMOKE_SUITE:-bookworm}
default_mirror() {
    local uri
    uri=$(sed -n 's/^URIs: *\(http[^ ]*debian\/\{0,1\}\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    [[ -z $uri ]] && uri=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${SMOKE_MIRROR:-$(default_mirror)}
PIP_CA=${SMOKE_PIP_CERT:-$(sed -n 's/^ *cert *= *//p' /etc/pip.conf 2>/dev/null | head -1)}

for port in 8317 8318 444 "$SMOKE_UPSTREAM_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port is in use; the container shares this network" >&2
        exit 1
    fi
done

if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
    echo "installing debootstrap and systemd-container"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >/dev/null \
        || exit 1
fi
if ((REBUILD)) || [[ ! -x $MACHINE/usr/lib/systemd/systemd ]]; then
    echo "debootstrap $SUITE from $MIRROR into $MACHINE (about a minute)"
    rm -rf "$MACHINE"
    mkdir -p "$(dirname "$MACHINE")"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv,git,curl,jq,ca-certificates,adduser,procps \
        "$SUITE" "$MACHINE" "$MIRROR" >/tmp/proxyd-smoke-debootstrap.log 2>&1 \
        || { echo "debootstrap failed; see /tmp/proxyd-smoke-debootstrap.log" >&2; exit 1; }
    echo proxyd-smoke >"$MACHINE/etc/hostname"
fi

WORK=$(mktemp -d /tmp/proxyd-smoke.XXXXXX)
cp "$SELF" "$WORK/systemd-smoke.sh"
[[ -n $PIP_CA && -r $PIP_CA ]] && cp "$PIP_CA" "$WORK/pip-ca.crt"
cat >"$WORK/fake_upstream.py" <<'EOF'
"""A stand-in OpenAI-compatible upstream for the smoke test: every chat completion answers "pong"."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"object": "list", "data": [{"id": "smoke-model", "object": "model", "owned_by": "smoke"}]})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self._send({"id": "chatcmpl-smoke", "object": "chat.completion", "created": int(time.time()),
                    "model": request.get("model", "smoke-model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF

NSPAWN=
cleanup() {
    if [[ -n $NSPAWN ]] && kill -0 "$NSPAWN" 2>/dev/null; then
        kill -TERM "$NSPAWN" 2>/dev/null  # nspawn halts the container
        for _ in $(seq 60); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$NSPAWN" 2>/dev/null
    fi
    if ((KEEP)); then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --ephemeral: every run boots a fresh copy of the base tree, removed when the container stops.
systemd-nspawn --quiet -D "$MACHINE" --ephemeral -b --register=no --keep-unit --console=passive \
    --machine=proxyd-smoke --bind-ro="$REPO:/mnt/proxyd-src" --bind-ro="$WORK:/mnt/smoke" >"$WORK/boot.log" 2>&1 &
NSPAWN=$!
LEADER=
for _ in $(seq 120); do
    LEADER=$(pgrep -P "$NSPAWN" | head -1)
    [[ -n $LEADER ]] && [[ $(readlink "/proc/$LEADER/exe" 2>/dev/null) == */systemd ]] && break
    kill -0 "$NSPAWN" 2>/dev/null || { echo "systemd-nspawn exited:" >&2; cat "$WORK/boot.log" >&2; exit 1; }
    LEADER=
    sleep 0.5
done
[[ -n $LEADER ]] || { echo "the container's systemd did not start" >&2; cat "$WORK/boot.log" >&2; exit 1; }
in_container() {
    nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 TERM=dumb SMOKE_PIP_CERT="${PIP_CA:+/mnt/smoke/pip-ca.crt}" "$@"
}
state=$(in_container timeout 120 systemctl is-system-running --wait)
echo "booted $MACHINE (ephemeral copy, systemd PID $LEADER on the host): $state"
[[ $state == running ]] || in_container systemctl --failed --no-pager

in_container bash /mnt/smoke/systemd-smoke.sh --inside 2>&1 | tee "$WORK/smoke.log"
rc=${PIPESTATUS[0]}

in_container systemctl poweroff 2>/dev/null
for _ in $(seq 120); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.5; done
exit "$rc"
