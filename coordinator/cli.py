"""The ``nsecluster`` command: Nmap's option spellings, one clear line for every bad input.

Only the standard library loads here, so ``nsecluster --help`` is instant; each subcommand
imports what it needs when it runs.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from coordinator.errors import UsageError, UserError

VERSION = "0.1.0"

SCAN_USAGE = "nsecluster scan [Scan Type(s)] [Options] {target specification}"
SCAN_EPILOG = """\
examples:
  nsecluster scan -sT -p 22,80,443 127.0.0.1
  nsecluster scan -n -Pn -p- --reason -oA localscan 127.0.0.1
  nsecluster scan -F -oX scan.xml -oJ scan.jsonl 127.0.1-3.1-254
"""


class _Parser(argparse.ArgumentParser):
    """Errors become UsageError (one line, exit code 2) instead of usage text and exit."""

    def error(self, message):
        raise UsageError(message)


def _add_scan_options(scan: argparse.ArgumentParser) -> None:
    g = scan.add_argument_group("target specification")
    g.add_argument("targets", nargs="*", metavar="TARGET",
                   help="host names, IP addresses, networks (127.0.0.0/24, 127.0.1-3.1-254, "
                        "::1, fe80::/120)")
    g.add_argument("-iL", dest="input_file", metavar="FILE",
                   help="read targets from FILE ('-' for standard input)")
    g.add_argument("--exclude", metavar="HOST[,HOST...]", action="append", default=[],
                   help="exclude hosts or networks")
    g.add_argument("--excludefile", metavar="FILE", help="exclude the targets listed in FILE")
    g.add_argument("-6", dest="ipv6", action="store_true",
                   help="resolve target names to IPv6 addresses")

    g = scan.add_argument_group("host discovery")
    g.add_argument("-Pn", dest="no_ping", action="store_true",
                   help="treat all hosts as online: skip host discovery")
    g.add_argument("-sn", dest="ping_only", action="store_true",
                   help="ping scan: host discovery only, no port scan")
    g.add_argument("-n", dest="dns", action="store_const", const="never",
                   help="never do reverse DNS resolution")
    g.add_argument("-R", dest="dns", action="store_const", const="always",
                   help="always resolve (default: only hosts that are up)")
    g.add_argument("--dns-servers", metavar="SERV1[,SERV2,...]",
                   help="DNS servers for reverse lookups (default: /etc/resolv.conf)")
    g.add_argument("--system-dns", action="store_true",
                   help="use the operating system's resolver for reverse lookups")

    g = scan.add_argument_group("scan techniques")
    g.add_argument("-sT", dest="connect_scan", action="store_true",
                   help="TCP connect scan (the default)")
    g.add_argument("-sS", dest="syn_scan", action="store_true",
                   help="TCP SYN scan (raw packets: root or CAP_NET_RAW)")
    g.add_argument("-sU", dest="udp_scan", action="store_true",
                   help="UDP scan, alone or beside -sS/-sT (raw packets: root or CAP_NET_RAW)")

    g = scan.add_argument_group("port specification and scan order")
    g.add_argument("-p", dest="ports", metavar="PORTS",
                   help="port ranges, e.g. -p22; -p1-65535; -p U:53,T:21-25,80; -p http,ssh; "
                        "-p- for all")
    g.add_argument("--top-ports", type=_positive_int("--top-ports"), metavar="N",
                   help="scan the N most common ports (needs Nmap's nmap-services)")
    g.add_argument("-F", dest="fast", action="store_true",
                   help="fast mode: the 100 most common ports")
    g.add_argument("-r", dest="sequential", action="store_true",
                   help="scan ports in order, not randomized")

    g = scan.add_argument_group("service/version detection")
    g.add_argument("-sV", dest="version_scan", action="store_true",
                   help="probe open ports to determine service/version info")
    g.add_argument("--version-intensity", metavar="<level>",
                   help="from 0 (light) to 9 (try all probes); 7 by default")
    g.add_argument("--version-light", action="store_true",
                   help="limit to the most likely probes (intensity 2)")
    g.add_argument("--version-all", action="store_true",
                   help="try every single probe (intensity 9)")
    g.add_argument("--version-trace", action="store_true",
                   help="show detailed version scan activity")

    g = scan.add_argument_group("script scan")
    g.add_argument("-sC", dest="default_scripts", action="store_true",
                   help="run the default scripts (same as --script=default)")
    g.add_argument("--script", dest="script", action="append", default=[],
                   metavar="<Lua scripts>",
                   help="comma-separated list of scripts, categories, directories or "
                        "expressions ('default and safe', 'http-*', '+banner')")
    g.add_argument("--script-args", metavar="<n1=v1,[n2=v2,...]>",
                   help="arguments for the scripts")
    g.add_argument("--script-args-file", metavar="FILE",
                   help="read script arguments from FILE (searched in the data directories)")
    g.add_argument("--script-timeout", metavar="<time>",
                   help="give up on a script after this long")
    g.add_argument("--script-trace", action="store_true",
                   help="show the data scripts send and receive")
    g.add_argument("--script-help", metavar="<Lua scripts>",
                   help="describe the selected scripts and exit")
    g.add_argument("--script-updatedb", action="store_true",
                   help="rebuild scripts/script.db from the scripts and exit")

    g = scan.add_argument_group("timing and performance",
                                "<time> is in seconds, or append 'ms', 's', 'm' or 'h' "
                                "(e.g. 30m, 0.25h, 500ms)")
    g.add_argument("-T", dest="timing", metavar="<0-5>",
                   help="timing template: 0 paranoid .. 3 normal .. 5 insane")
    g.add_argument("--min-hostgroup", type=_positive_int("--min-hostgroup"), metavar="N")
    g.add_argument("--max-hostgroup", type=_positive_int("--max-hostgroup"), metavar="N")
    g.add_argument("--min-parallelism", type=_positive_int("--min-parallelism"), metavar="N")
    g.add_argument("--max-parallelism", type=_positive_int("--max-parallelism"), metavar="N")
    g.add_argument("--min-rtt-timeout", metavar="<time>")
    g.add_argument("--max-rtt-timeout", metavar="<time>")
    g.add_argument("--initial-rtt-timeout", metavar="<time>")
    g.add_argument("--max-retries", type=_nonnegative_int("--max-retries"), metavar="N",
                   help="cap the number of port scan probe retransmissions")
    g.add_argument("--host-timeout", metavar="<time>", help="give up on a host after this long")
    g.add_argument("--scan-delay", metavar="<time>", help="wait at least this long between "
                                                         "probes to one host")
    g.add_argument("--max-scan-delay", metavar="<time>")
    g.add_argument("--min-rate", type=_positive_float("--min-rate"), metavar="N",
                   help="send no fewer than N probes per second")
    g.add_argument("--max-rate", type=_positive_float("--max-rate"), metavar="N",
                   help="send no more than N probes per second")

    g = scan.add_argument_group("output")
    g.add_argument("-oN", dest="out_normal", metavar="FILE", help="normal output ('-': stdout)")
    g.add_argument("-oX", dest="out_xml", metavar="FILE", help="XML output")
    g.add_argument("-oG", dest="out_grepable", metavar="FILE", help="grepable output")
    g.add_argument("-oJ", dest="out_json", metavar="FILE",
                   help="JSON Lines output (schema: docs/json-schema.md)")
    g.add_argument("-oA", dest="out_all", metavar="BASENAME",
                   help="normal, XML and grepable output to BASENAME.{nmap,xml,gnmap}")
    g.add_argument("-v", dest="verbosity", action="count", default=0,
                   help="increase verbosity (-vv or more for greater effect)")
    g.add_argument("-d", dest="debugging", action="count", default=0,
                   help="increase debugging (-dd or more for greater effect)")
    g.add_argument("--reason", action="store_true", help="show why each port is in its state")
    g.add_argument("--open", action="store_true",
                   help="only show open (or possibly open) ports")
    g.add_argument("--datadir", metavar="DIR", help="look for Nmap data files in DIR first")

    g = scan.add_argument_group("privilege")  # as Nmap's; the last of the two given wins
    g.add_argument("--privileged", dest="privilege", action="store_const", const="privileged",
                   help="assume raw packets may be sent (nmap.is_privileged() is true)")
    g.add_argument("--unprivileged", dest="privilege", action="store_const",
                   const="unprivileged",
                   help="assume no raw-packet privileges: no raw scans, nmap.is_privileged() "
                        "is false")

    g = scan.add_argument_group("raw packets")
    g.add_argument("-e", dest="interface", metavar="IFACE",
                   help="send raw packets (discovery, -sS) through this network interface")
    g.add_argument("--spoof-mac", metavar="MAC|0|PREFIX|VENDOR",
                   help="source MAC address of the Ethernet frames sent (ARP discovery): an "
                        "address, 0 (random), a prefix or a vendor name (random rest)")

    g = scan.add_argument_group("cluster")
    g.add_argument("--broker", metavar="URL",
                   help="run on the workers of this Redis broker, e.g. redis://HOST:6379/0 "
                        "(default: $NSECLUSTER_BROKER; without one the scan runs here)")


def _positive_int(option):
    def parse(text):
        if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{option} requires a positive integer, got {text!r}")
        return int(text)
    return parse


def _nonnegative_int(option):
    def parse(text):
        if not re.fullmatch(r"\d+", text.strip()):
            raise argparse.ArgumentTypeError(f"{option} requires a number >= 0, got {text!r}")
        return int(text)
    return parse


def _positive_float(option):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{option} requires a positive number, got {text!r}")
        return value
    return parse


COMMANDS = {"scan": "scan targets (Nmap's options)",
            "worker": "run a cluster worker (Celery) for scans given --broker",
            "flower": "watch the cluster in Flower (web dashboard)",
            "status": "show a cluster scan's progress: status SCAN_ID",
            "cancel": "stop a cluster scan from another shell: cancel SCAN_ID"}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, for --help, --version and the list of commands."""
    parser = _Parser(prog="nsecluster",
                     description="The Nmap Scripting Engine in Python.",
                     usage="nsecluster [-h] [--version] COMMAND [options]")
    parser.add_argument("--version", action="version", version=f"nsecluster {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def build_scan_parser() -> argparse.ArgumentParser:
    scan = _Parser(prog="nsecluster scan", usage=SCAN_USAGE, epilog=SCAN_EPILOG,
                   description="Discover hosts, scan their ports and report like Nmap.",
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_scan_options(scan)
    return scan


_COUNTED = re.compile(r"-([vd])(\d+)")


def normalize_argv(argv: list[str]) -> list[str]:
    """Nmap spellings argparse does not know: -v3 / -d2 (levels), -T4 stays as is."""
    out = []
    for arg in argv:
        match = _COUNTED.fullmatch(arg)
        if match:
            out.append("-" + match.group(1) * max(int(match.group(2)), 1))
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debugging = any(re.fullmatch(r"-d+|-d\d+", a) for a in argv)
    try:
        if not argv or argv[0] not in COMMANDS:
            build_parser().parse_args(argv)  # --help, --version, or an error naming the choices
            raise UsageError("a command is required (try 'nsecluster --help')")
        command, rest = argv[0], argv[1:]
        if command == "scan":
            # Options may follow targets, as with Nmap: parse intermixed.
            args = build_scan_parser().parse_intermixed_args(normalize_argv(rest))
            if args.script_updatedb:
                from coordinator.updatedb import run_script_updatedb
                return run_script_updatedb(args, dict(os.environ))
            if args.script_help is not None:
                from coordinator.scripthelp import run_script_help
                return run_script_help(args, dict(os.environ))
            from coordinator.scan import run_scan_command
            return run_scan_command(args, " ".join(["nsecluster", *argv]), dict(os.environ))
        if command in ("worker", "flower"):
            from worker.cluster import command as cluster_command
            run = cluster_command.run_worker if command == "worker" else \
                cluster_command.run_flower
            return run(rest, dict(os.environ))
        if command in ("status", "cancel"):
            from coordinator import control
            run = control.run_status if command == "status" else control.run_cancel
            return run(rest, dict(os.environ))
        raise UsageError(f"unknown command {command!r}")
    except UserError as exc:
        print(f"nsecluster: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nsecluster: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except Exception as exc:  # our bug: say so in one line; the traceback only under -d
        if debugging:
            import traceback
            traceback.print_exc()
        print(f"nsecluster: internal error: {type(exc).__name__}: {exc} "
              f"(run with -d for details)", file=sys.stderr)
        return 3


def _silence_stdout() -> None:
    # After EPIPE (e.g. piped into `head`), stop Python from complaining at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def run() -> None:
    """The console entry point: ``main``, then a direct exit once every output is flushed.
    Skipping the interpreter's final clean-up matters: lupa's Lua objects may be freed after
    their Lua state there, which can crash a finished scan on its way out."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
