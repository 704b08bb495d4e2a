"""Timing templates and Nmap's time syntax."""
import pytest

from coordinator.errors import UserError
from coordinator.timing import TEMPLATES, build_timing, parse_template, parse_time_ms


@pytest.mark.parametrize("text, ms", [
    ("30", 30_000), ("30s", 30_000), ("500ms", 500), ("5m", 300_000), ("2h", 7_200_000),
    ("0.25h", 900_000), ("1.5s", 1500), (".5s", 500), ("0", 0), (" 10S ", 10_000),
])
def test_time_syntax(text, ms):
    assert parse_time_ms(text, "--host-timeout") == ms


@pytest.mark.parametrize("text", ["", "soon", "-5s", "5x", "1e3", "5 s", "ms"])
def test_bad_times_name_the_option(text):
    with pytest.raises(UserError, match="--scan-delay"):
        parse_time_ms(text, "--scan-delay")


def test_templates_by_number_and_name():
    assert [parse_template(t) for t in ("0", "5", "Paranoid", "insane", "normal")] == \
        [0, 5, 0, 5, 3]
    for bad in ("6", "-1", "fast", ""):
        with pytest.raises(UserError):
            parse_template(bad)


def test_documented_template_values():
    assert (TEMPLATES[4].max_rtt_timeout_ms, TEMPLATES[4].initial_rtt_timeout_ms,
            TEMPLATES[4].max_retries) == (1250, 500, 6)
    assert (TEMPLATES[5].max_rtt_timeout_ms, TEMPLATES[5].max_retries,
            TEMPLATES[5].host_timeout_ms) == (300, 2, 900_000)
    assert TEMPLATES[0].scan_delay_ms == 300_000 and TEMPLATES[2].scan_delay_ms == 400
    assert TEMPLATES[3].max_retries == 10


def test_explicit_options_override_the_template_and_are_checked():
    timing = build_timing(4, {"max_retries": 1, "host_timeout_ms": 5000, "min_rate": None})
    assert (timing.level, timing.max_retries, timing.host_timeout_ms) == (4, 1, 5000)
    assert timing.max_rtt_timeout_ms == 1250  # the rest still from -T4
    # The initial timeout follows bounds set below or above it.
    assert build_timing(3, {"max_rtt_timeout_ms": 200}).initial_rtt_timeout_ms == 200
    for overrides, option in (({"min_rtt_timeout_ms": 900, "max_rtt_timeout_ms": 100},
                               "--min-rtt-timeout"),
                              ({"min_rate": 50.0, "max_rate": 5.0}, "--min-rate"),
                              ({"min_parallelism": 9, "max_parallelism": 3},
                               "--min-parallelism")):
        with pytest.raises(UserError, match=option):
            build_timing(3, overrides)
