from __future__ import annotations

import dataclasses
import ipaddress
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icmpsensor.config.kinds import config_fields
from icmpsensor.config.loader import config_to_yaml, load_config
from icmpsensor.config.schema import (
    AllowlistConfig,
    Config,
    DetectionConfig,
    NoticeSwitches,
    OutputConfig,
    SensorConfig,
)
from icmpsensor.errors import ConfigError, InputError
from icmpsensor.notice.policy import HostAllowlist
from testkit.paths import REPO
from tests.hypothesis_counts import examples

SHIPPED = REPO / "etc" / "icmpsensor.yaml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def config_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith(path + ":")
    return info.value.message[len(path) :]


def non_default() -> Config:
    return Config(
        sensor=SensorConfig(name="edge-1 ñ"),
        detection=DetectionConfig(
            exfil_bytes_threshold=0,
            changed_requests_threshold=2**31,
            reply_pairing="last_request",
            idle_timeout=0.5,
            max_flows=1,
            ignore_default_pings=False,
            notices=NoticeSwitches(data_exfil=False, unpaired_echo_reply=True),
        ),
        allowlist=AllowlistConfig(
            hosts=(ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::1/128")),
            payloads=(b"\x12\x34", b"abc", b"\x00"),
        ),
        output=OutputConfig(log_dir="/tmp/x y", notice_log="n.log", stdout=True),
    )


# --------------------------------------------------------------------------- defaults and round trips


def test_none_gives_defaults() -> None:
    assert load_config(None) == Config()
    assert load_config(None).source is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "detection:\nallowlist:\n"])
def test_empty_file_gives_defaults(tmp_path: Path, text: str) -> None:
    cfg = load_config(write(tmp_path, text))
    assert dataclasses.replace(cfg, source=None) == Config()
    assert cfg.source == str(tmp_path / "cfg.yaml")


@pytest.mark.parametrize("cfg", [Config(), non_default()], ids=["defaults", "non-default"])
def test_round_trip(tmp_path: Path, cfg: Config) -> None:
    loaded = load_config(write(tmp_path, config_to_yaml(cfg)))
    assert dataclasses.replace(loaded, source=None) == cfg


def test_dump_writes_hosts_and_payloads_as_text() -> None:
    data = yaml.safe_load(config_to_yaml(non_default()))
    assert list(data) == ["sensor", "detection", "allowlist", "decode", "output", "capture", "journald", "stats"]
    assert data["allowlist"] == {
        "hosts": ["192.0.2.0/24", "2001:db8::1/128"],
        "payloads": ["1234", "616263", "00"],
    }


def test_int_accepted_for_seconds_and_hex_forms(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """\
            detection:
              idle_timeout: 60
            allowlist:
              hosts: [10.0.0.1, "::1", 10.0.0.0/255.0.0.0]
              payloads:
                - 1234
                - "DE:AD be ef"
            """,
        )
    )
    assert cfg.detection.idle_timeout == 60.0 and isinstance(cfg.detection.idle_timeout, float)
    assert [str(n) for n in cfg.allowlist.hosts] == ["10.0.0.1/32", "::1/128", "10.0.0.0/8"]
    assert cfg.allowlist.payloads == (b"\x12\x34", b"\xde\xad\xbe\xef")


# --------------------------------------------------------------------------- the shipped file


def test_shipped_file_is_defaults_except_log_dir() -> None:
    cfg = load_config(str(SHIPPED))
    expected = dataclasses.replace(Config(), output=OutputConfig(log_dir="/var/log/icmpsensor"))
    assert dataclasses.replace(cfg, source=None) == expected


def _key_paths(cls: type, prefix: str = "") -> list[str]:
    paths = []
    for f in config_fields(cls):
        dotted = f"{prefix}{f.name}"
        paths.append(dotted)
        if dataclasses.is_dataclass(f.default_factory):
            paths += _key_paths(f.default_factory, dotted + ".")  # type: ignore[arg-type]
    return paths


def test_shipped_file_has_every_key() -> None:
    data = yaml.safe_load(SHIPPED.read_text())
    paths = _key_paths(Config)
    assert "detection.notices.asym_payload_flow" in paths and "source" not in paths
    for dotted in paths:
        node: Any = data
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"{dotted} missing from {SHIPPED.name}"
            node = node[part]


def _documented_zero_keys() -> list[tuple[str, str]]:
    """(dotted key, its documentation) of every key whose documentation gives the value 0 a meaning ("0: off",
    "(0: never aggregate)", "0 for ...")."""
    keys = []
    for dotted in _key_paths(Config):
        *sections, name = dotted.split(".")
        cls: Any = Config
        for part in sections:
            cls = next(f.default_factory for f in config_fields(cls) if f.name == part)
        field = next(f for f in config_fields(cls) if f.name == name)
        doc = field.doc
        if re.search(r"\b0(: | for |\))", doc):
            keys.append((dotted, doc))
    return keys


@pytest.mark.parametrize(("dotted", "doc"), _documented_zero_keys())
def test_every_key_whose_documentation_gives_0_a_meaning_accepts_0(tmp_path: Path, dotted: str, doc: str) -> None:
    """detection.aggregate_interval's documentation (and the shipped file's) said "0: never aggregate", and the
    loader refused 0 as out of range: exit 78 for a value the manual offers."""
    *sections, name = dotted.split(".")
    nesting = "".join(f"{'  ' * depth}{part}:\n" for depth, part in enumerate(sections))
    text = f"{nesting}{'  ' * len(sections)}{name}: 0\n"
    cfg: Any = load_config(write(tmp_path, text))
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    assert cfg == 0, (dotted, doc)


def test_the_keys_that_give_0_a_meaning_are_found() -> None:
    found = dict(_documented_zero_keys())
    assert {"detection.aggregate_interval", "detection.aggregate_max_notices", "stats.interval",
            "capture.reopen_timeout", "output.rotation.keep"} <= set(found), sorted(found)


# --------------------------------------------------------------------------- errors


def test_dev_null_is_an_empty_config_at_once() -> None:
    """`-c /dev/null` (run with the defaults) waited 10 s and failed, exit 66, as a FIFO no one writes to: a
    character device's end of file is its end; only a FIFO's may mean its writer has not come yet."""
    began = time.monotonic()
    assert dataclasses.replace(load_config("/dev/null"), source=None) == Config()
    assert time.monotonic() - began < 2.0


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(InputError) as info:
        load_config(path)
    assert info.value.message == f"config file {path}: No such file or directory"


def test_directory_given(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_config(str(tmp_path))
    assert info.value.message == f"config file {tmp_path}: is a directory"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "sensor:\n  name: x\ndetection: [1, 2\n")
    assert msg == ":4: YAML syntax error: expected ',' or ']', but got '<stream end>'"
    assert config_error(tmp_path, "a: 1\n b: 2\n").startswith(":2: YAML syntax error: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"sensor:\n  name: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.message == f"{path}:2: not UTF-8 text"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_not_mapping(tmp_path: Path, text: str) -> None:
    assert config_error(tmp_path, text) == ":1: top level must be a mapping of sections"


def test_unknown_key_with_hint(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "detection:\n  max_flows: 5\n  idle_timout: 3\n")
    assert msg == ":3: detection.idle_timout: unknown key (did you mean 'idle_timeout'?)"


def test_unknown_key_without_hint(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "detection:\n  notices:\n    zzz: true\n")
    assert msg == ":3: detection.notices.zzz: unknown key"


def test_unknown_section(tmp_path: Path) -> None:
    assert config_error(tmp_path, "sensor: {}\ndetecton: {}\n") == (
        ":2: detecton: unknown section (did you mean 'detection'?)"
    )
    assert config_error(tmp_path, "zzz_stuff: 1\n") == ":1: zzz_stuff: unknown section"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detection:\n  max_flows: abc\n", ":2: detection.max_flows: expected an integer, got string 'abc'"),
        ("detection:\n  max_flows: true\n", ":2: detection.max_flows: expected an integer, got boolean true"),
        ("detection:\n  max_flows: 1.5\n", ":2: detection.max_flows: expected an integer, got float 1.5"),
        ("detection:\n  max_flows:\n", ":2: detection.max_flows: expected an integer, got null"),
        (
            "decode:\n\n  fragment_timeout: '3'\n",
            ":3: decode.fragment_timeout: expected a number of seconds, got string '3'",
        ),
        ("output:\n  stdout: 1\n", ":2: output.stdout: expected a boolean (true or false), got integer 1"),
        (
            "sensor:\n  name: 12\n",
            ":2: sensor.name: expected a string, got integer 12 (quote it to use it as text)",
        ),
        ("detection:\n  - 1\n", ":2: detection: expected a mapping (section), got a list"),
        ("detection:\n  notices: 3\n", ":2: detection.notices: expected a mapping (section), got integer 3"),
        (
            "allowlist:\n  hosts: 10.0.0.1\n",
            ":2: allowlist.hosts: expected a list of addresses or CIDR networks, got string '10.0.0.1'",
        ),
        ("allowlist:\n  payloads: [[ab]]\n", ":2: allowlist.payloads[0]: expected hex strings, got a list"),
        ("detection:\n  max_flows: !!int abc\n", ":2: detection.max_flows: cannot read integer abc"),
        # PyYAML's int and float constructors index the text's first character: IndexError on an empty scalar
        ("detection:\n  max_flows: !!int ''\n", ":2: detection.max_flows: cannot read integer ''"),
        ("detection:\n  idle_timeout: !!int '_'\n", ":2: detection.idle_timeout: cannot read integer _"),
        ("detection:\n  idle_timeout: !!float ''\n", ":2: detection.idle_timeout: cannot read float ''"),
        ("detection:\n  max_flows: !!int '-'\n", ":2: detection.max_flows: cannot read integer -"),
    ],
)
def test_wrong_type(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "output:\n  log_dir: /x\n  evidence:\n    directory: notice.log\n",
            ":4: output.evidence.directory: names the same file in output.log_dir as output.notice_log "
            "('notice.log')",
        ),
        (
            "stats:\n  log: n.log\noutput:\n  notice_log: n.log\n",
            ":4: output.notice_log: names the same file in output.log_dir as stats.log ('n.log')",
        ),
        (
            "output:\n  evidence:\n    directory: stats.log\n",
            ":3: output.evidence.directory: names the same file in output.log_dir as stats.log ('stats.log')",
        ),
        # the textfile over notice.log replaced every notice with metrics (red team, 2026-12-08)
        (
            "output:\n  notice_log: notice.prom\nstats:\n  prometheus_textfile: notice.prom\n",
            ":2: output.notice_log: names the same file in output.log_dir as stats.prometheus_textfile ('notice.prom')",
        ),
        (
            "output:\n  log_dir: /var/x\nstats:\n  log: s.prom\n  prometheus_textfile: /var/x/s.prom\n",
            ":4: stats.log: names the same file in output.log_dir as stats.prometheus_textfile ('s.prom')",
        ),
        # one named like another log's rotated copy: that log's `keep` deleted it (red team, 2026-12-08)
        (
            "output:\n  notice_log: stats.2000-01-01-00-00-00.log\n",
            ":2: output.notice_log: names a rotated copy of stats.log ('stats.2000-01-01-00-00-00.log'): its "
            "rotation would compress and delete it",
        ),
        (
            "stats:\n  log: notice.2026-12-08-10-00-00-3.log.gz\n",
            ":2: stats.log: names a rotated copy of output.notice_log ('notice.2026-12-08-10-00-00-3.log.gz'): its "
            "rotation would compress and delete it",
        ),
        (
            "output:\n  notice_log: n.prom\nstats:\n  prometheus_textfile: n.2026-12-08-10-00-00.prom\n",
            ":4: stats.prometheus_textfile: names a rotated copy of output.notice_log "
            "('n.2026-12-08-10-00-00.prom'): its rotation would compress and delete it",
        ),
    ],
)
def test_two_outputs_naming_one_file_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, text) == expected


@pytest.mark.parametrize("text", [
    "stats:\n  prometheus_textfile: /var/lib/node_exporter/icmpsensor.prom\n",  # elsewhere: any name
    "output:\n  notice_log: n.prom\nstats:\n  prometheus_textfile: /elsewhere/n.prom\n",
    "output:\n  notice_log: notice.log.2026\n",  # not the rotated pattern
    "output:\n  notice_log: stats-2000-01-01-00-00-00.log\n",
])
def test_outputs_apart_are_accepted(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    load_config(str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detection:\n  max_flows: 0\n", ":2: detection.max_flows: must be between 1 and 100000000, got 0"),
        (
            "detection:\n  max_flows: 100_000_001\n",
            ":2: detection.max_flows: must be between 1 and 100000000, got 100_000_001",
        ),
        (
            "detection:\n  exfil_bytes_threshold: -1\n",
            ":2: detection.exfil_bytes_threshold: must be between 0 and 1099511627776, got -1",
        ),
        (
            "detection:\n  idle_timeout: 0\n",
            ":2: detection.idle_timeout: must be greater than 0 and at most 86400, got 0",
        ),
        (
            "detection:\n  idle_timeout: 86400.5\n",
            ":2: detection.idle_timeout: must be greater than 0 and at most 86400, got 86400.5",
        ),
        (
            "detection:\n  idle_timeout: .nan\n",
            ":2: detection.idle_timeout: must be greater than 0 and at most 86400, got .nan",
        ),
        (
            "decode:\n  fragment_timeout: 601\n",
            ":2: decode.fragment_timeout: must be greater than 0 and at most 600, got 601",
        ),
        (  # a frame cut shorter than Ethernet's largest hides the payloads the sensor measures (all truncated)
            "capture:\n  snaplen: 96\n",
            ":2: capture.snaplen: must be between 1518 and 262144, got 96",
        ),
    ],
)
def test_out_of_range(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, text) == expected


def test_bad_choice(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "detection:\n  reply_pairing: foo\n")
    assert msg == ":2: detection.reply_pairing: must be one of auto, matched, last_request, got 'foo'"
    msg = config_error(tmp_path, "detection:\n  reply_pairing: 3\n")
    assert msg == ":2: detection.reply_pairing: must be one of auto, matched, last_request, got integer 3"


def test_bad_host(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "allowlist:\n  hosts:\n    - 10.0.0.1\n    - ::1\n    - 10.0.0.300\n")
    assert msg == ":5: allowlist.hosts[2]: '10.0.0.300' is not an IP address or CIDR network"


def test_cidr_with_host_bits(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "allowlist:\n  hosts: [192.168.1.1/24]\n")
    assert msg == ":2: allowlist.hosts[0]: '192.168.1.1/24' has host bits set (did you mean 192.168.1.0/24?)"


def test_bad_hex_payload(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "allowlist:\n  payloads:\n    - abcd\n    - xyz1\n")
    assert msg == (
        ":4: allowlist.payloads[1]: 'xyz1' is not a hex string "
        "(0-9 and a-f, optionally separated by ' ' or ':')"
    )
    assert config_error(tmp_path, "allowlist:\n  payloads: ['  ']\n") == (
        ":2: allowlist.payloads[0]: must be a non-empty hex string"
    )


def test_odd_length_hex(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "allowlist:\n  payloads: ['ab:c']\n")
    assert msg == ":2: allowlist.payloads[0]: 'ab:c' has an odd number of hex digits (3)"


def test_duplicate_key(tmp_path: Path) -> None:
    msg = config_error(tmp_path, "detection:\n  max_flows: 5\n  idle_timeout: 3\n  max_flows: 6\n")
    assert msg == ":4: detection.max_flows: duplicate key (first defined on line 2)"
    assert config_error(tmp_path, "output: {}\nsensor: {}\noutput: {}\n") == (
        ":3: output: duplicate key (first defined on line 1)"
    )


@pytest.mark.parametrize("name", ["a/b", "..", ""])
def test_notice_log_must_be_a_file_name(tmp_path: Path, name: str) -> None:
    msg = config_error(tmp_path, f"output:\n  notice_log: '{name}'\n")
    assert msg.startswith(":2: output.notice_log: must be a file name")
    assert repr(name) in msg


def test_sensor_name_checks(tmp_path: Path) -> None:
    assert config_error(tmp_path, "sensor:\n  name: ''\n") == ":2: sensor.name: must not be empty"
    assert config_error(tmp_path, 'sensor:\n  name: "a\\tb"\n') == (
        ":2: sensor.name: must contain only printable characters, got 'a\\tb'"
    )
    assert config_error(tmp_path, f"sensor:\n  name: {'x' * 129}\n") == (
        ":2: sensor.name: must be at most 128 characters, got 129"
    )


def test_messages_copied_from_the_file_stay_on_one_line(tmp_path: Path) -> None:
    msg = config_error(tmp_path, 'detection:\n  max_flows: "a\\nb\\u2028c"\n')
    assert msg == ":2: detection.max_flows: expected an integer, got string 'a\\nb\\u2028c'"
    msg = config_error(tmp_path, 'detection:\n  "x\\ny": 1\n')
    assert msg == ":2: detection.x\\ny: unknown key"


# --------------------------------------------------------------------------- host_allowed


def test_host_allowed() -> None:
    allow = HostAllowlist(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128"))
    packed = [ipaddress.ip_address(a).packed for a in ("10.1.2.3", "192.0.2.7", "2001:db8:ffff::1", "::1")]
    assert all(allow.allowed(p) for p in packed)
    outside = ("11.0.0.1", "192.0.2.8", "2001:db9::1", "::2", "::ffff:10.0.0.1", "0.0.0.0")
    assert not any(allow.allowed(ipaddress.ip_address(a).packed) for a in outside)
    assert not allow.allowed(b"\x0a\x00\x00")


def test_host_allowed_empty() -> None:
    allow = HostAllowlist(AllowlistConfig().hosts)
    assert allow.empty and not allow.allowed(ipaddress.ip_address("198.51.100.1").packed)
    assert not allow.allowed(bytes(16))


def test_host_allowed_from_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "allowlist:\n  hosts: [0.0.0.0/0]\n"))
    allow = HostAllowlist(cfg.allowlist.hosts)
    assert allow.allowed(bytes([255, 1, 2, 3]))
    assert not allow.allowed(bytes(16))


# --------------------------------------------------------------------------- robustness


def _assert_only_clean_errors(path: Path) -> None:
    try:
        load_config(str(path))
    except ConfigError as exc:
        assert exc.message.startswith(f"{path}:")
        assert len(exc.message.splitlines()) == 1
    except InputError as exc:
        assert len(exc.message.splitlines()) == 1


_keys = st.sampled_from(
    ["detection", "allowlist", "hosts", "payloads", "max_flows", "idle_timeout", "notices", "x"]
)
_yamlish = st.lists(
    st.one_of(
        _keys,
        st.sampled_from([":", " ", "\n", "- ", "  ", "[", "]", "{", "}", ",", "'", '"', "!!int", "&a", "*a"]),
        st.text(max_size=5),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=examples(300), database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(), _yamlish))
def test_arbitrary_text_gives_only_clean_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _assert_only_clean_errors(path)


@settings(max_examples=100, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary())
def test_arbitrary_bytes_give_only_clean_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    _assert_only_clean_errors(path)


def test_a_loaded_config_pickles_as_a_reload_to_workers_does(tmp_path: Path) -> None:
    import pickle

    cfg = load_config(write(tmp_path, "detection:\n  notices:\n    tunnel: false\njournald:\n  priorities:\n"
                                      "    data_exfil: crit\n"))
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.detection.notices.tunnel is False and again.journald.priorities.data_exfil == "crit"



# --------------------------------------------------------------------------- stats: metrics and capture loss


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stats:\n  capture_loss_threshold: 1.5\n",
         ":2: stats.capture_loss_threshold: must be between 0 (off) and 1, got 1.5"),
        ("stats:\n  capture_loss_threshold: -0.1\n",
         ":2: stats.capture_loss_threshold: must be between 0 (off) and 1, got -0.1"),
        ("stats:\n  capture_loss_threshold: .nan\n",
         ":2: stats.capture_loss_threshold: must be between 0 (off) and 1, got .nan"),
        ("stats:\n  capture_loss_threshold: " + "9" * 400 + "\n",
         ":2: stats.capture_loss_threshold: must be between 0 (off) and 1, got " + "9" * 60 + "..."),
        ("stats:\n  capture_loss_threshold: '0.1'\n",
         ":2: stats.capture_loss_threshold: expected a fraction between 0 and 1, got string '0.1'"),
        ("stats:\n  prometheus_textfile: /var/lib/icmpsensor/metrics.txt\n",
         ":2: stats.prometheus_textfile: must be a file name ending in .prom (node_exporter reads only *.prom), "
         "got '/var/lib/icmpsensor/metrics.txt'"),
        ("stats:\n  prometheus_textfile: /var/lib/icmpsensor/.prom\n",
         ":2: stats.prometheus_textfile: must be a file name ending in .prom (node_exporter reads only *.prom), "
         "got '/var/lib/icmpsensor/.prom'"),
    ],
)
def test_stats_metrics_and_capture_loss_keys_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    assert config_error(tmp_path, text) == expected


def test_stats_metrics_and_capture_loss_keys_are_read(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "stats:\n  prometheus_textfile: /var/lib/icmpsensor/icmpsensor.prom\n"
                                      "  capture_loss_threshold: 0\n"))
    assert cfg.stats.prometheus_textfile == "/var/lib/icmpsensor/icmpsensor.prom"
    assert cfg.stats.capture_loss_threshold == 0.0 and isinstance(cfg.stats.capture_loss_threshold, float)
    assert load_config(write(tmp_path, "stats:\n  capture_loss_threshold: 1\n")).stats.capture_loss_threshold == 1.0
    defaults = Config().stats
    assert (defaults.prometheus_textfile, defaults.capture_loss_threshold) == ("", 0.1)


# --------------------------------------------------------------------------- sections behave as dataclasses


def test_sections_behave_as_dataclasses() -> None:
    """Sections are plain classes (config/fields.py: no @dataclass, for a fast start) that the dataclasses
    functions accept and that construct, compare and print as dataclasses do."""
    cfg = Config()
    assert dataclasses.is_dataclass(Config) and dataclasses.is_dataclass(cfg.detection)
    assert [f.name for f in dataclasses.fields(Config)] == [*(f.name for f in config_fields(Config)), "source"]
    assert [f.name for f in dataclasses.fields(NoticeSwitches)] == [f.name for f in config_fields(NoticeSwitches)]
    assert dataclasses.asdict(cfg)["detection"]["notices"]["tunnel"] is True
    changed = dataclasses.replace(cfg.detection, max_flows=7)
    assert changed.max_flows == 7 and changed.idle_timeout == 300.0 and changed != cfg.detection
    assert changed.notices is cfg.detection.notices  # replace copies the references, as it does for a dataclass
    assert Config().detection.notices is not Config().detection.notices  # a section default is made per instance
    assert DetectionConfig.max_flows == 100_000 and SensorConfig("edge") == SensorConfig(name="edge")
    assert repr(SensorConfig("edge")) == "SensorConfig(name='edge')"
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_flow'"):
        DetectionConfig(max_flow=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'name'"):
        SensorConfig("a", name="b")  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        SensorConfig("a", "b")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unhashable"):
        hash(cfg)
    assert SensorConfig() != ("icmpsensor",) and (SensorConfig() == object()) is False


def test_a_section_subclass_has_its_own_fields() -> None:
    from icmpsensor.config.kinds import Bool
    from icmpsensor.config.schema import key

    assert [f.name for f in dataclasses.fields(SensorConfig)] == ["name"]  # the base's, built first

    class Wider(SensorConfig):
        extra: bool = key(True, Bool(), "a key added by a subclass")

    assert [f.name for f in dataclasses.fields(Wider)] == ["name", "extra"]
    assert [f.name for f in config_fields(Wider)] == ["name", "extra"]
    assert dataclasses.replace(Wider(), extra=False) == Wider("icmpsensor", False)


# --------------------------------------------------------------------------- libyaml and PyYAML's parser


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_a_good_file_is_read_by_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    from icmpsensor.config import loader

    def python_parser(*args: object) -> None:
        raise AssertionError("a good file needs no second reading")

    monkeypatch.setattr(loader, "_compose", python_parser)
    assert dataclasses.replace(load_config(str(SHIPPED)), source=None) == dataclasses.replace(
        Config(), output=OutputConfig(log_dir="/var/log/icmpsensor"))


_NOISE = st.sampled_from(["\t", "@", "`", "|#", "!!str ", "!x ", "&a ", "*a", "%", "'", '"', "#", " #x", "\r",
                          "\x85", "\u2028", "\ufeff", "é", "---\n", "...\n", "? ", ": ", "- ", "[", "]", "{", "}",
                          ",", "  ", "\n", "~", "|-\n  x\n", "<<: *a\n", "1", "0x1", "yes", ".5"])


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
@settings(max_examples=examples(150), database=None, deadline=None)
@given(edits=st.lists(st.tuples(st.floats(0, 1), _NOISE), min_size=1, max_size=3))
def test_libyaml_and_the_python_parser_read_a_file_alike(edits: list[tuple[float, str]]) -> None:
    """The shipped file, mutated: wherever both parsers take it, the configurations are equal (libyaml takes a
    few files the Python parser refuses, a tab after a colon for one: docs/design.md#configuration)."""
    from icmpsensor.config.loader import _load, _load_libyaml

    text = SHIPPED.read_text()
    for where, noise in edits:
        at = int(where * len(text))
        text = text[:at] + noise + text[at:]
    fast = _load_libyaml(text)
    try:
        slow = _load("cfg.yaml", text)
    except ConfigError:
        return
    assert fast is None or fast == slow
