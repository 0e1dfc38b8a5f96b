#!/usr/bin/env bash
# Install icmpsensor as a systemd service, from this checkout. Run as root:
#
#   bash packaging/install.sh                      # pip fetches the dependencies from the index
#   bash packaging/install.sh --wheelhouse DIR     # offline: everything from DIR (see below)
#
# Options:
#   --wheelhouse DIR   install with `pip install --no-index --find-links DIR`: DIR holds icmpsensor
#                      and all its dependencies as wheels, built on a machine with network access by
#                          pip wheel /path/to/checkout -w DIR
#                      (with the Python version of the target machine).
#   --python PATH      the Python the venv is made from (default: /usr/bin/python3, the system's).
#   --with-logrotate   also install /etc/logrotate.d/icmpsensor (then switch the built-in rotation
#                      off, see packaging/logrotate/icmpsensor).
#
# What it does, idempotently (running it again repairs and updates, and changes nothing else):
#   /opt/icmpsensor                      venv (`python3 -m venv`) with icmpsensor pip-installed
#   /etc/icmpsensor/icmpsensor.yaml      the shipped config, ONLY if there is none: an existing
#                                        (edited) one is never touched; if the shipped one differs
#                                        it is written beside it as icmpsensor.yaml.dist
#   /usr/local/lib/systemd/system/icmpsensor.service       (override with `systemctl edit`)
#   /usr/local/lib/sysusers.d/icmpsensor.conf   -> systemd-sysusers (user and group icmpsensor)
#   /usr/local/lib/tmpfiles.d/icmpsensor.conf   -> systemd-tmpfiles --create (/var/log/icmpsensor...)
#   /usr/local/lib/systemd/catalog/icmpsensor.catalog -> journalctl --update-catalog
#   /usr/local/share/man/man8/icmpsensor.8, man5/icmpsensor.yaml.5   (man icmpsensor, man icmpsensor.yaml)
#   systemctl daemon-reload              only when systemd runs the machine (PID 1)
# It neither enables nor starts the service: set capture.interface first (it says how).
#
# Every command has a time limit; every failure is one line on stderr, `install.sh: error: ...`.
set -euo pipefail
umask 022

PREFIX=/opt/icmpsensor
CONF_DIR=/etc/icmpsensor
CONF=$CONF_DIR/icmpsensor.yaml
UNIT_DIR=/usr/local/lib/systemd/system
SYSUSERS_DIR=/usr/local/lib/sysusers.d
TMPFILES_DIR=/usr/local/lib/tmpfiles.d
CATALOG_DIR=/usr/local/lib/systemd/catalog
LOGROTATE_DIR=/etc/logrotate.d
MAN_DIR=/usr/local/share/man

PYTHON=/usr/bin/python3
WHEELHOUSE=
WITH_LOGROTATE=0

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a directory"; WHEELHOUSE=$2; shift 2 ;;
        --wheelhouse=*) WHEELHOUSE=${1#*=}; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON=$2; shift 2 ;;
        --python=*) PYTHON=${1#*=}; shift ;;
        --with-logrotate) WITH_LOGROTATE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/icmpsensor-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ERR=$WORK/output

# run SECONDS WHAT COMMAND...: COMMAND bounded by SECONDS; on failure one line naming WHAT,
# the exit status (124: timed out) and the command's last line of output.
run() {
    local secs=$1 what=$2 rc=0
    shift 2
    timeout --kill-after=10 "$secs" "$@" >"$ERR" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        local last
        last=$(grep -v '^[[:space:]]*$' "$ERR" | tail -n 1 || true)
        [ "$rc" -eq 124 ] && last="timed out after ${secs}s"
        die "$what failed (exit $rc): ${last:-no output}"
    fi
}

# ---- checks -------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (it writes /opt, /etc and /usr/local)"
[ -f "$SRC/pyproject.toml" ] && [ -f "$SRC/icmpsensor/__init__.py" ] \
    || die "$SRC is not an icmpsensor checkout (no pyproject.toml / icmpsensor/__init__.py)"
for f in etc/icmpsensor.yaml packaging/systemd/icmpsensor.service packaging/sysusers.d/icmpsensor.conf \
         packaging/tmpfiles.d/icmpsensor.conf packaging/journal-catalog/icmpsensor.catalog \
         packaging/man/icmpsensor.8 packaging/man/icmpsensor.yaml.5; do
    [ -f "$SRC/$f" ] || die "missing $SRC/$f"
done
[ -x "$PYTHON" ] || die "no Python at $PYTHON (install python3, or give --python PATH)"
run 30 "checking $PYTHON (3.11 or newer with the venv module; Debian: apt-get install python3-venv)" \
    "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))'
for tool in systemd-sysusers systemd-tmpfiles journalctl; do
    command -v "$tool" >/dev/null || die "$tool not found (is this a systemd system?)"
done
VERSION=$(sed -n 's/^__version__ *= *["'\'']\([^"'\'']*\)["'\''].*/\1/p' "$SRC/icmpsensor/__init__.py")
[ -n "$VERSION" ] || die "cannot read __version__ from $SRC/icmpsensor/__init__.py"
if [ -n "$WHEELHOUSE" ]; then
    [ -d "$WHEELHOUSE" ] || die "wheelhouse $WHEELHOUSE is not a directory"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
    compgen -G "$WHEELHOUSE/icmpsensor-$VERSION-*.whl" >/dev/null \
        || die "wheelhouse $WHEELHOUSE has no icmpsensor-$VERSION wheel (build it: pip wheel $SRC -w $WHEELHOUSE)"
fi

# ---- the venv and the package --------------------------------------------------------------
if ! timeout 30 "$PREFIX/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    # Absent, or broken (e.g. its Python was removed by an upgrade): (re)create it.
    say "creating the venv $PREFIX ($PYTHON -m venv)"
    run 300 "creating the venv $PREFIX" "$PYTHON" -m venv --clear "$PREFIX"
fi
PIP=("$PREFIX/bin/python" -m pip install --disable-pip-version-check --no-input --no-warn-script-location --quiet)
if [ -n "$WHEELHOUSE" ]; then
    say "installing icmpsensor $VERSION from the wheelhouse $WHEELHOUSE"
    PIP+=(--no-index --find-links "$WHEELHOUSE")
    # The package and whatever dependency is missing or too old...
    run 900 "pip install icmpsensor==$VERSION" "${PIP[@]}" "icmpsensor==$VERSION"
    # ...then this wheel's code even if the same version is installed already.
    run 900 "pip install icmpsensor==$VERSION (reinstall)" "${PIP[@]}" --force-reinstall --no-deps \
        "icmpsensor==$VERSION"
else
    say "installing icmpsensor $VERSION from $SRC"
    # pip builds in the source tree: build from a copy, so that the checkout may be read-only
    # and gets no build/ or *.egg-info. pip always reinstalls a package given as a directory.
    run 120 "copying $SRC to $WORK" "$PYTHON" -c 'import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2],
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "*.so", "__pycache__", ".*_cache",
                                      ".hypothesis"))' "$SRC" "$WORK/src"
    run 900 "pip install $SRC" "${PIP[@]}" "$WORK/src"
fi
run 60 "running $PREFIX/bin/icmpsensor --version" "$PREFIX/bin/icmpsensor" --version

# ---- configuration -------------------------------------------------------------------------
run 10 "creating $CONF_DIR" install -d -m 0755 "$CONF_DIR"
if [ ! -e "$CONF" ]; then
    run 10 "installing $CONF" install -m 0644 "$SRC/etc/icmpsensor.yaml" "$CONF"
    say "installed $CONF"
elif timeout 30 cmp -s "$SRC/etc/icmpsensor.yaml" "$CONF"; then
    say "$CONF is the shipped one, unchanged"
else
    run 10 "installing $CONF.dist" install -m 0644 "$SRC/etc/icmpsensor.yaml" "$CONF.dist"
    say "kept your $CONF; the shipped version (it differs) is in $CONF.dist: compare them"
fi
if [ "$WITH_LOGROTATE" -eq 1 ]; then
    run 10 "creating $LOGROTATE_DIR" install -d -m 0755 "$LOGROTATE_DIR"
    if [ ! -e "$LOGROTATE_DIR/icmpsensor" ]; then
        run 10 "installing $LOGROTATE_DIR/icmpsensor" \
            install -m 0644 "$SRC/packaging/logrotate/icmpsensor" "$LOGROTATE_DIR/icmpsensor"
        say "installed $LOGROTATE_DIR/icmpsensor: set output.rotation max_bytes: 0 and interval: 0 in $CONF"
    elif ! timeout 30 cmp -s "$SRC/packaging/logrotate/icmpsensor" "$LOGROTATE_DIR/icmpsensor"; then
        say "kept your $LOGROTATE_DIR/icmpsensor (the shipped one differs: $SRC/packaging/logrotate/icmpsensor)"
    fi
fi

# ---- systemd integration -------------------------------------------------------------------
# install_file SRC DIR: copy with mode 0644 (replacing an older copy; these are not meant to be
# edited in place: use drop-ins and /etc/... overrides).
install_file() {
    run 10 "creating $2" install -d -m 0755 "$2"
    run 10 "installing $2/$(basename "$1")" install -m 0644 "$1" "$2/"
}
install_file "$SRC/packaging/systemd/icmpsensor.service" "$UNIT_DIR"
install_file "$SRC/packaging/sysusers.d/icmpsensor.conf" "$SYSUSERS_DIR"
install_file "$SRC/packaging/tmpfiles.d/icmpsensor.conf" "$TMPFILES_DIR"
install_file "$SRC/packaging/journal-catalog/icmpsensor.catalog" "$CATALOG_DIR"
install_file "$SRC/packaging/man/icmpsensor.8" "$MAN_DIR/man8"
install_file "$SRC/packaging/man/icmpsensor.yaml.5" "$MAN_DIR/man5"

run 60 "systemd-sysusers (creating user and group icmpsensor)" \
    systemd-sysusers "$SYSUSERS_DIR/icmpsensor.conf"
run 60 "systemd-tmpfiles --create" systemd-tmpfiles --create "$TMPFILES_DIR/icmpsensor.conf"
run 120 "journalctl --update-catalog" journalctl --update-catalog

# sd_booted(): systemd is PID 1 exactly when /run/systemd/system/ exists.
if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    run 120 "systemctl daemon-reload" systemctl daemon-reload
    SYSTEMD=1
else
    say "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): skipped daemon-reload"
    SYSTEMD=0
fi

# ---- final check ---------------------------------------------------------------------------
run 60 "checking $CONF (icmpsensor -c $CONF --check-config)" "$PREFIX/bin/icmpsensor" -c "$CONF" --check-config
IFACE=$(timeout 60 "$PREFIX/bin/python" -c \
        'import sys; from icmpsensor.config.loader import load_config; print(load_config(sys.argv[1]).capture.interface)' \
        "$CONF" 2>/dev/null || true)
say "icmpsensor $VERSION installed in $PREFIX"
if [ "$SYSTEMD" -eq 1 ] && timeout 30 systemctl --quiet is-active icmpsensor.service; then
    say "icmpsensor is running the code it started with: systemctl restart icmpsensor to run this version"
fi
if [ -z "$IFACE" ]; then
    say "next: set capture.interface (the SPAN port) in $CONF, then: systemctl enable --now icmpsensor"
elif [ "$SYSTEMD" -eq 1 ]; then
    say "capture.interface is $IFACE; start with: systemctl enable --now icmpsensor (or: systemctl restart icmpsensor)"
fi
