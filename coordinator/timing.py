"""Timing templates (-T0..-T5) and Nmap's time syntax."""
from __future__ import annotations

import dataclasses
import re

from coordinator.errors import UserError
from worker.protocol import Timing

TEMPLATE_NAMES = {"paranoid": 0, "sneaky": 1, "polite": 2, "normal": 3, "aggressive": 4,
                  "insane": 5}

# The values Nmap documents for each template (man page, "Timing templates").
TEMPLATES = {
    0: Timing(level=0, initial_rtt_timeout_ms=300_000, max_rtt_timeout_ms=300_000,
              scan_delay_ms=300_000, max_scan_delay_ms=300_000),
    1: Timing(level=1, initial_rtt_timeout_ms=15_000, max_rtt_timeout_ms=15_000,
              scan_delay_ms=15_000, max_scan_delay_ms=15_000),
    2: Timing(level=2, scan_delay_ms=400),
    3: Timing(level=3),
    4: Timing(level=4, initial_rtt_timeout_ms=500, min_rtt_timeout_ms=100,
              max_rtt_timeout_ms=1250, max_retries=6, max_scan_delay_ms=10),
    5: Timing(level=5, initial_rtt_timeout_ms=250, min_rtt_timeout_ms=50,
              max_rtt_timeout_ms=300, max_retries=2, max_scan_delay_ms=5,
              host_timeout_ms=900_000),
}

_TIME_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_TIME = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?")


def parse_template(value: str) -> int:
    text = value.strip().lower()
    if text in TEMPLATE_NAMES:
        return TEMPLATE_NAMES[text]
    if text.isdigit() and int(text) in TEMPLATES:
        return int(text)
    raise UserError(f"Unknown timing mode (-T argument).  Use either \"paranoid\", \"sneaky\", "
                    f"\"polite\", \"normal\", \"aggressive\", \"insane\" or a number from 0 "
                    f"(paranoid) to 5 (insane): {value!r}")


def parse_time_ms(value: str, option: str) -> int:
    """Nmap's time syntax: a number with an optional unit (ms, s, m, h); bare means seconds."""
    match = _TIME.fullmatch(value.strip().lower())
    if not match:
        raise UserError(f"{option}: bad time specification {value!r} "
                        f"(use a number with ms, s, m or h, e.g. 500ms or 30s)")
    number, unit = match.groups()
    return int(round(float(number) * _TIME_UNITS_MS[unit or "s"]))


def build_timing(level: int, overrides: dict) -> Timing:
    """The template, then every explicit option on top of it, checked for consistency."""
    timing = dataclasses.replace(TEMPLATES[level],
                                 **{k: v for k, v in overrides.items() if v is not None})
    if timing.min_rtt_timeout_ms > timing.max_rtt_timeout_ms:
        raise UserError("--min-rtt-timeout must be less than or equal to --max-rtt-timeout")
    if timing.initial_rtt_timeout_ms < timing.min_rtt_timeout_ms:
        timing = dataclasses.replace(timing, initial_rtt_timeout_ms=timing.min_rtt_timeout_ms)
    if timing.initial_rtt_timeout_ms > timing.max_rtt_timeout_ms:
        timing = dataclasses.replace(timing, initial_rtt_timeout_ms=timing.max_rtt_timeout_ms)
    if timing.max_rate and timing.min_rate > timing.max_rate:
        raise UserError(f"--min-rate={timing.min_rate:g} must be less than or equal to "
                        f"--max-rate={timing.max_rate:g}")
    if timing.max_parallelism and timing.min_parallelism > timing.max_parallelism:
        raise UserError("--min-parallelism must be less than or equal to --max-parallelism")
    if timing.max_retries < 0:
        raise UserError("--max-retries must be 0 or more")
    return timing
