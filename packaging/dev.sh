#!/usr/bin/env bash
# Developer entry point: set up, run the built-in example, run the tests.
#
#   bash packaging/dev.sh example   # set up, then run the sensor on the built-in example capture
#   bash packaging/dev.sh test      # set up, then lint and run the whole test suite
#   bash packaging/dev.sh setup     # only set up: Debian packages + .venv with the package and test tools
#
# Setup is idempotent and quick when nothing is missing. Run as root on a fresh Debian machine
# (apt-get needs root); every network step has a timeout so this never hangs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the Python build chain (also for icmpsensor's C decoder), what systemd-python compiles against, and the
# traffic tools the live tests use between network namespaces; groff and man-db for the man pages' tests.
APT_PACKAGES=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev
              iproute2 iputils-ping tcpdump hping3 tcpreplay systemd systemd-container logrotate
              ptunnel ptunnel-ng icmptx nmap tshark groff-base man-db)

log() { printf 'dev.sh: %s\n' "$*" >&2; }

setup_apt() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${missing[*]} (run as root, or install them with apt-get)"
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_venv() {
    local stamp=.venv/.installed
    # (the editable install compiles the C accelerators once: a newer source means build again)
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] \
        && [ -z "$(find icmpsensor \( -name '*.c' -o -name '*.h' \) -newer "$stamp" -print -quit)" ] \
        && .venv/bin/python -c 'import icmpsensor.decode._fastdecode, icmpsensor.decode._fastfragments, icmpsensor.detect._fasttools, icmpsensor.detect._fastflows, icmpsensor.detect._fastnonecho, icmpsensor.notice._fastaggregate, icmpsensor.output._fastevidence, pcapy, dpkt, yaml, systemd.journal, prometheus_client, pytest, xdist, scapy, zat, parsezeeklogs, zeek_reports, communityid' 2>/dev/null; then
        return 0
    fi
    log "building .venv (python3 -m venv; pip install -e '.[test,bench]')"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    # editable_mode=compat: a plain path entry instead of an import hook, which costs every start ~15 ms
    timeout 900 .venv/bin/pip install -q --disable-pip-version-check -e '.[test,bench]' \
        --config-settings editable_mode=compat
    touch "$stamp"
}

setup() { setup_apt; setup_venv; }

example() {
    setup
    local dir="${TMPDIR:-/tmp}/icmpsensor-example"
    rm -rf "$dir" && mkdir -p "$dir"
    .venv/bin/python -m icmpsensor.example "$dir/example.pcap"
    .venv/bin/icmpsensor -r "$dir/example.pcap" --log-dir "$dir"
    echo
    echo "Notices in $dir/notice.log:"
    .venv/bin/python - "$dir/notice.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    n = json.loads(line)
    print(f"  {n['note']:<28} {n['src']:>15} -> {n['dst']:<15} {n['msg']}")
PY
}

run_tests() {
    setup
    .venv/bin/ruff check .
    # every property test at its full example count (the fast loop's default profile tries a third: tests/conftest.py)
    export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
    if [ $# -gt 0 ]; then
        .venv/bin/python -m pytest "$@"
        return
    fi
    # The whole suite in two passes: the in-process and replay tiers only compute, so they run on every core
    # (pytest-xdist); the live and system tiers time what they measure, so they run alone, one test at a time.
    local computing=0 timed=0
    .venv/bin/python -m pytest -m "not live and not system" -n "$(nproc)" --dist worksteal || computing=$?
    .venv/bin/python -m pytest -m "live or system" || timed=$?
    log "pytest exit codes: unit and replay $computing, live and system $timed"
    return $((computing ? computing : timed))
}

case "${1:-}" in
    setup) setup ;;
    example) example ;;
    test) shift; run_tests "$@" ;;
    *) echo "usage: bash packaging/dev.sh {setup|example|test [pytest args]}" >&2; exit 2 ;;
esac
