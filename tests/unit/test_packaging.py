"""The files under packaging/, checked with systemd's own tools, without installing anything.

Everything runs against temporary roots (`--root=`); the host is not changed. The same
files are installed and exercised under a real systemd in tests/system/test_systemd.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from icmpsensor.config import manpage
from icmpsensor.notice.types import NOTE_TYPES
from icmpsensor.output import catalog, journal
from testkit.paths import REPO

PKG = REPO / "packaging"
UNIT = PKG / "systemd" / "icmpsensor.service"
SYSUSERS = PKG / "sysusers.d" / "icmpsensor.conf"
TMPFILES = PKG / "tmpfiles.d" / "icmpsensor.conf"
CATALOG = PKG / "journal-catalog" / "icmpsensor.catalog"
LOGROTATE = PKG / "logrotate" / "icmpsensor"
INSTALL = PKG / "install.sh"
MAN8 = PKG / "man" / "icmpsensor.8"
MAN5 = PKG / "man" / "icmpsensor.yaml.5"

ALL_MESSAGE_IDS = {
    *(note.message_id for note in NOTE_TYPES),
    *(value for name, value in vars(journal).items() if name.startswith("MSGID_")),
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package systemd; bash packaging/dev.sh setup)")
    return path


def run(*argv: str | Path, timeout: float = 60.0,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False,
                          env=env)


def man_env(root: Path) -> dict[str, str]:
    """`systemd-analyze verify` runs the host's `man` for every Documentation=man:...: the pages install.sh puts
    under the root's /usr/local/share/man, found there."""
    return {**os.environ, "MANPATH": str(root / "usr/local/share/man")}


def unit_directives() -> dict[str, list[str]]:
    """KEY -> values, in order, for the whole unit (sections merged; keys are unique across them here)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


# -- the unit ------------------------------------------------------------------------------------


def test_unit_security_score_is_at_most_2() -> None:
    proc = run(tool("systemd-analyze"), "security", "--offline=yes", "--no-pager", UNIT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"systemd-analyze complained about the unit: {proc.stderr}"
    score = re.search(r"Overall exposure level for icmpsensor\.service: (\d+\.\d+)", proc.stdout)
    assert score, proc.stdout[-500:]
    assert float(score.group(1)) <= 2.0, proc.stdout


def _verify_root(tmp_path: Path) -> Path:
    """A root with systemd's unit tree, the unit where install.sh puts it, and its executables."""
    root = tmp_path / "root"
    for d in ("usr/bin", "usr/sbin", "usr/lib/systemd", "usr/local/lib/systemd/system", "etc/systemd/system",
              "opt/icmpsensor/bin"):
        (root / d).mkdir(parents=True)
    for link in ("bin", "sbin", "lib"):
        (root / link).symlink_to(f"usr/{link}")
    system_units = Path("/usr/lib/systemd/system")
    if not (system_units / "sysinit.target").exists():
        system_units = Path("/lib/systemd/system")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "usr/bin/kill")
    stub = root / "opt/icmpsensor/bin/icmpsensor"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    shutil.copy2(UNIT, root / "usr/local/lib/systemd/system/icmpsensor.service")
    for page, section in ((MAN8, "man8"), (MAN5, "man5")):
        (root / "usr/local/share/man" / section).mkdir(parents=True)
        shutil.copy2(page, root / "usr/local/share/man" / section / page.name)
    return root


def test_unit_verifies_without_any_message(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    root = _verify_root(tmp_path)
    proc = run(analyze, "verify", f"--root={root}", "icmpsensor.service", env=man_env(root))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    # The check is live: a bad key and a missing ExecReload= binary are reported.
    installed = root / "usr/local/lib/systemd/system/icmpsensor.service"
    installed.write_text(installed.read_text().replace("[Service]\n", "[Service]\nNoSuchKey=1\n"))
    (root / "usr/bin/kill").unlink()
    (root / "usr/local/share/man/man5" / MAN5.name).unlink()
    proc = run(analyze, "verify", f"--root={root}", "icmpsensor.service", env=man_env(root))
    assert "NoSuchKey" in proc.stderr and "/bin/kill" in proc.stderr, proc.stderr
    assert "man icmpsensor.yaml(5)" in proc.stderr, "a Documentation= page that is not installed is reported"


def test_unit_has_the_required_settings() -> None:
    d = unit_directives()
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "ExecStart": ["/opt/icmpsensor/bin/icmpsensor -c /etc/icmpsensor/icmpsensor.yaml"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "Restart": ["on-failure"],
        "User": ["icmpsensor"],
        "Group": ["icmpsensor"],
        "AmbientCapabilities": ["CAP_NET_RAW"],
        "CapabilityBoundingSet": ["CAP_NET_RAW"],
        "ProtectSystem": ["strict"],
        "LogsDirectory": ["icmpsensor"],
        "LogsDirectoryMode": ["0750"],
        "StateDirectory": ["icmpsensor"],
        "MemoryDenyWriteExecute": ["yes"],
        "NoNewPrivileges": ["yes"],
        "UMask": ["0027"],
    }
    for key, value in expected.items():
        assert d.get(key) == value, f"{key}= is {d.get(key)}, expected {value}"
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_PACKET", "AF_UNIX", "AF_NETLINK"}
    assert "PrivateUsers" not in d, "PrivateUsers= makes CAP_NET_RAW useless on the host's interfaces"
    assert "PrivateNetwork" not in d, "the sensor must see the host's interfaces"
    watchdog = d["WatchdogSec"][0]
    assert watchdog.endswith("s") and 10 <= int(watchdog[:-1]) <= 120


def test_configuration_and_usage_errors_stop_the_unit_instead_of_restarting_it() -> None:
    d = unit_directives()
    assert d["Restart"] == ["on-failure"]
    prevented = {int(code) for value in d["RestartPreventExitStatus"] for code in value.split()}
    assert {2, 78} <= prevented, "usage (2) and configuration (78) errors must not restart-loop"
    assert prevented <= {2, 77, 78}, "a capture or output failure (66, 73) or a crash may pass: restart those"
    # a start limit, so that a unit failing within seconds of every start ends up failed, not looping
    interval, burst = d["StartLimitIntervalSec"][0], int(d["StartLimitBurst"][0])
    seconds = int(interval.removesuffix("min")) * 60 if interval.endswith("min") else int(interval.removesuffix("s"))
    restart_sec = int(d["RestartSec"][0].removesuffix("s"))
    assert seconds > 0 and burst >= 3 and burst * restart_sec < seconds, (interval, burst)


def test_the_unit_points_at_the_man_pages() -> None:
    (documentation,) = unit_directives()["Documentation"]
    assert documentation.split() == ["man:icmpsensor(8)", "man:icmpsensor.yaml(5)"]


def test_systemd_reads_the_restart_policy(tmp_path: Path) -> None:
    """systemd's own parser: the exit statuses and the start limit as it understands them."""
    analyze = tool("systemd-analyze")
    root = _verify_root(tmp_path)
    proc = run(analyze, "verify", f"--root={root}", "icmpsensor.service", env=man_env(root))
    assert (proc.returncode, proc.stderr) == (0, "")
    # a misspelt exit status is reported: the check reads the directive
    installed = root / "usr/local/lib/systemd/system/icmpsensor.service"
    installed.write_text(installed.read_text().replace("RestartPreventExitStatus=2 77 78",
                                                       "RestartPreventExitStatus=2 77 seventy-eight"))
    proc = run(analyze, "verify", f"--root={root}", "icmpsensor.service", env=man_env(root))
    assert "Failed to parse value, ignoring: seventy-eight" in proc.stderr, proc.stderr


# -- man pages -------------------------------------------------------------------------------------


def test_the_yaml_man_page_is_the_one_rendered_from_the_schema() -> None:
    assert MAN5.read_text() == manpage.render(), "run: python -m icmpsensor.config.manpage > " + str(MAN5)


def test_the_yaml_man_page_lists_every_key() -> None:
    text = MAN5.read_text()
    keys = manpage.all_keys()
    assert "stats.prometheus_textfile" in keys and "detection.notices.capture_loss" in keys
    for key in keys:
        assert f"\\fB{manpage.escape(key)}\\fR" in text, key


def test_a_key_added_to_the_schema_makes_the_rendering_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    from icmpsensor.config import schema
    from icmpsensor.config.fields import ConfigSection
    from icmpsensor.config.kinds import Int

    class Extra(ConfigSection):
        new_key: int = schema.key(1, Int(0, 9), "a key added to the schema")

    class Grown(schema.Config):
        extra: Extra = schema.section(Extra, "a new section")

    monkeypatch.setattr(manpage, "Config", Grown)
    assert "extra.new_key" in manpage.all_keys()
    rendered = manpage.render()
    assert "\\fBextra.new_key\\fR" in rendered and rendered != MAN5.read_text()


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=["icmpsensor.8", "icmpsensor.yaml.5"])
def test_man_page_formats_without_a_warning(page: Path) -> None:
    groff = tool("groff")
    proc = run(groff, "-man", "-Tutf8", "-ww", "-z", page)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    rendered = run(groff, "-man", "-Tascii", "-P-cbou", page)
    assert rendered.returncode == 0
    text = rendered.stdout
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert f"\n{section}\n" in text, section


def test_groff_reports_a_broken_man_page(tmp_path: Path) -> None:
    groff = tool("groff")
    page = tmp_path / "broken.8"
    page.write_text(MAN8.read_text().replace(".SH OPTIONS", ".SH OPTIONS\n.BOGUSREQUEST x\n\\fZ"))
    proc = run(groff, "-man", "-Tutf8", "-ww", "-z", page)
    assert proc.stderr != "", "groff -ww must complain about an unknown request and escape"


def test_the_command_man_page_names_every_option_and_exit_status() -> None:
    text = MAN8.read_text().replace("\\-", "-")
    for option in ("-r", "-i", "-c", "--log-dir", "--stdout", "--workers", "--check-config", "--print-config",
                   "--version", "--help"):
        assert option in text, option
    for code in ("0", "1", "2", "66", "73", "77", "78"):
        assert f".B {code}\n" in text, code


def test_install_sh_installs_the_man_pages() -> None:
    text = INSTALL.read_text()
    assert 'install_file "$SRC/packaging/man/icmpsensor.8" "$MAN_DIR/man8"' in text
    assert 'install_file "$SRC/packaging/man/icmpsensor.yaml.5" "$MAN_DIR/man5"' in text
    assert "MAN_DIR=/usr/local/share/man" in text


# -- sysusers, tmpfiles ----------------------------------------------------------------------------


def test_sysusers_and_tmpfiles_apply_cleanly(tmp_path: Path) -> None:
    sysusers, tmpfiles = tool("systemd-sysusers"), tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to give the directories to user icmpsensor")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for src, where in ((SYSUSERS, "usr/local/lib/sysusers.d"), (TMPFILES, "usr/local/lib/tmpfiles.d")):
        (root / where).mkdir(parents=True)
        shutil.copy2(src, root / where / src.name)
    proc = run(sysusers, f"--root={root}")
    assert proc.returncode == 0, proc.stderr
    # It only says what it created: any other line is a complaint about the file.
    assert all(line.startswith("Creating ") for line in proc.stderr.splitlines()), proc.stderr
    passwd = [line.split(":") for line in (root / "etc/passwd").read_text().splitlines()]
    groups = {line.split(":")[0]: line.split(":")[2] for line in (root / "etc/group").read_text().splitlines()}
    (user,) = [p for p in passwd if p[0] == "icmpsensor"]
    assert int(user[2]) < 1000, "a system user"
    assert user[3] == groups["icmpsensor"], "its primary group is the group icmpsensor"
    assert user[5:] == ["/var/lib/icmpsensor", "/usr/sbin/nologin"]
    # A second run changes nothing.
    again = run(sysusers, f"--root={root}")
    assert (again.returncode, again.stderr) == (0, "")

    proc = run(tmpfiles, f"--root={root}", "--create")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    uid, gid = int(user[2]), int(groups["icmpsensor"])
    for path, mode, owner in (("etc/icmpsensor", 0o755, (0, 0)), ("var/log/icmpsensor", 0o750, (uid, gid)),
                              ("var/lib/icmpsensor", 0o750, (uid, gid))):
        st = (root / path).stat()
        assert (st.st_mode & 0o7777, (st.st_uid, st.st_gid)) == (mode, owner), path


# -- journal catalog -------------------------------------------------------------------------------


def test_catalog_has_one_entry_per_message_id() -> None:
    ids = re.findall(r"^-- ([0-9a-f]{32})(?: \S+)?$", CATALOG.read_text(), re.MULTILINE)
    assert len(ids) == len(set(ids)), "duplicate entries"
    assert set(ids) == ALL_MESSAGE_IDS, "packaging/journal-catalog and icmpsensor/journal.py disagree"


def test_catalog_is_the_one_rendered_from_the_note_table() -> None:
    assert CATALOG.read_text() == catalog.render(), "run: python -m icmpsensor.output.catalog > " + str(CATALOG)


def test_catalog_compiles(tmp_path: Path) -> None:
    journalctl = tool("journalctl")
    root = tmp_path / "root"
    (root / "usr/local/lib/systemd/catalog").mkdir(parents=True)
    shutil.copy2(CATALOG, root / "usr/local/lib/systemd/catalog" / CATALOG.name)
    proc = run(journalctl, f"--root={root}", "--update-catalog")
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert (root / "var/lib/systemd/catalog/database").stat().st_size > 0
    listed = run(journalctl, f"--root={root}", "--list-catalog", "--no-pager")
    assert listed.returncode == 0, listed.stderr
    assert set(re.findall(r"^([0-9a-f]{32}) ", listed.stdout, re.MULTILINE)) == ALL_MESSAGE_IDS
    for msgid in ALL_MESSAGE_IDS:
        entry = run(journalctl, f"--root={root}", "--dump-catalog", msgid).stdout
        assert "Subject: " in entry and "Defined-By: icmpsensor" in entry, msgid
        assert "What to do" in entry or "Nothing needs to be done" in entry, f"{msgid}: say what to do"


# -- logrotate -------------------------------------------------------------------------------------


def test_logrotate_uses_create_mode_and_reload() -> None:
    text = LOGROTATE.read_text()
    directives = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "create 0640 icmpsensor icmpsensor" in directives
    assert "copytruncate" not in directives
    assert "systemctl reload icmpsensor >/dev/null 2>&1 || true" in directives
    assert "copytruncate" in text and "max_bytes: 0" in text and "interval: 0" in text  # the comments
    # logrotate itself reads it in tests/system/test_systemd.py, where the user icmpsensor exists.


# -- install.sh ------------------------------------------------------------------------------------


def test_install_sh_syntax_and_usage() -> None:
    assert run("bash", "-n", INSTALL).returncode == 0
    usage = run("bash", INSTALL, "--help")
    assert usage.returncode == 0 and "--wheelhouse DIR" in usage.stdout
    bad = run("bash", INSTALL, "--frobnicate")
    assert (bad.returncode, bad.stderr) == (1, "install.sh: error: unknown argument '--frobnicate' (see --help)\n")


def test_install_sh_stops_before_changing_anything_on_a_bad_wheelhouse(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    proc = run("bash", INSTALL, "--wheelhouse", missing)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"install.sh: error: wheelhouse {missing} is not a directory"] or \
        proc.stderr.startswith("install.sh: error: must run as root")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("bash", INSTALL, "--wheelhouse", empty)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
