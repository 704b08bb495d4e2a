"""From a parsed command line to a frozen, validated scan plan.

Everything the user can get wrong is checked here, before any packet leaves: ports, timing,
target syntax, input files. The plan's ``options`` are what every host-group job carries.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import time
from dataclasses import dataclass

from coordinator.errors import UserError
from coordinator.grouping import host_group_sizes
from coordinator.ports import default_ports, fast_ports, parse_port_spec, top_ports
from coordinator.targets import parse_excludes, validate_tokens
from coordinator.timing import build_timing, parse_template, parse_time_ms
from worker.datadir import DataPath
from worker.protocol import PortSet, ScanOptions, ScriptOptions, VersionOptions
from worker.services import ServiceTable, service_table_for


@dataclass(frozen=True)
class ScanPlan:
    scan_id: str
    command_line: str
    start_time: float
    target_tokens: tuple[str, ...]
    input_file: str | None
    excludes: tuple[str, ...]
    exclude_file: str | None
    address_family: int  # for target names: 4, or 6 with -6
    options: ScanOptions
    outputs: tuple[tuple[str, str], ...]  # (format, destination); "-" is stdout
    first_group_size: int
    group_size: int
    show_reason: bool
    open_only: bool
    datapath: DataPath
    services: ServiceTable = dataclasses.field(compare=False, repr=False)
    warnings: tuple[str, ...] = ()
    broker: str | None = None  # --broker / $NSECLUSTER_BROKER: run on the cluster
    notices: tuple[str, ...] = ()  # screen-only lines after "Starting" (e.g. Spoofing MAC)

    @property
    def interactive(self) -> bool:
        """Whether the screen gets Nmap's interactive output (not when a file format does)."""
        return not any(dest == "-" for _, dest in self.outputs)


def build_plan(args, command_line: str, environ: dict) -> ScanPlan:
    warnings: list[str] = []
    datapath = DataPath.from_environment(args.datadir, environ, environ.get("HOME"))
    services = service_table_for(args.datadir, environ)
    warnings.extend(services.warnings)
    ping_only = bool(args.ping_only)
    syn = bool(getattr(args, "syn_scan", False))
    udp = bool(getattr(args, "udp_scan", False))
    if ping_only and (args.connect_scan or syn or udp):
        raise UserError("-sn (skip port scan) is not valid with any other scan type "
                        f"({'-sS' if syn else '-sT' if args.connect_scan else '-sU'})")
    if syn and args.connect_scan:
        raise UserError("You specified more than one type of TCP scan. Please choose only one "
                        "of -sT and -sS")
    if ping_only and (args.ports is not None or args.top_ports or args.fast):
        raise UserError("-sn (no port scan) cannot be combined with -p, --top-ports or -F")
    # Nmap's default is a TCP scan; -sU alone scans UDP only, -sU with -sS/-sT both.
    tcp = not ping_only and (args.connect_scan or syn or not udp)
    protocols = ("tcp",) * tcp + ("udp",) * udp
    ports = PortSet() if ping_only else _choose_ports(args, services, warnings, protocols)
    if protocols and ports.count("tcp") + ports.count("udp") == 0:
        what = ("TCP and UDP", "-sT/-sS and -sU") if tcp and udp else \
            ("UDP", "-sU") if udp else ("TCP", "-sS" if syn else "-sT")
        raise UserError(f"No {what[0]} ports to scan: the port list selects none for "
                        f"{what[1]}")

    validate_tokens(args.targets, 6 if args.ipv6 else None)
    for text in args.exclude:
        parse_excludes(text)

    timing = build_timing(parse_template(args.timing) if args.timing is not None else 3, {
        "initial_rtt_timeout_ms": _time(args.initial_rtt_timeout, "--initial-rtt-timeout"),
        "min_rtt_timeout_ms": _time(args.min_rtt_timeout, "--min-rtt-timeout"),
        "max_rtt_timeout_ms": _time(args.max_rtt_timeout, "--max-rtt-timeout"),
        "max_retries": args.max_retries,
        "host_timeout_ms": _time(args.host_timeout, "--host-timeout"),
        "scan_delay_ms": _time(args.scan_delay, "--scan-delay"),
        "max_scan_delay_ms": _time(args.max_scan_delay, "--max-scan-delay"),
        "min_rate": args.min_rate,
        "max_rate": args.max_rate,
        "min_parallelism": args.min_parallelism,
        "max_parallelism": args.max_parallelism,
    })
    script_options = _script_options(args, datapath)
    if not args.targets and not args.input_file and script_options is None:
        # With scripts, as in Nmap: their pre- and post-scan phases run, 0 hosts are scanned.
        raise UserError("no targets given (see 'nsecluster scan --help')")
    version_options = _version_options(args, ping_only)
    if version_options is not None:  # -sV also runs the "version" scripts (nse-spec §2.3)
        script_options = (ScriptOptions(script_scan=False, version_scan=True)
                          if script_options is None
                          else dataclasses.replace(script_options, version_scan=True))
    broker = args.broker or environ.get("NSECLUSTER_BROKER") or None
    privilege = getattr(args, "privilege", None) or "auto"
    if tcp and not syn and not args.connect_scan:
        syn = _default_is_syn(privilege, broker, args.ipv6)
    options = ScanOptions(
        ports=ports,
        scan_type="none" if not tcp else "syn" if syn else "connect",
        udp_scan=udp,
        randomize_ports=not args.sequential,
        host_discovery=not args.no_ping,
        reverse_dns=args.dns or "up",
        dns_servers=_dns_servers(args.dns_servers),
        system_dns=bool(args.system_dns),
        timing=timing,
        verbosity=args.verbosity + args.debugging,  # as in Nmap, each -d also adds a -v
        debugging=args.debugging,
        datadir=args.datadir,
        scripts=script_options,
        privilege=privilege,
        version=version_options,
    )
    options, notices = _raw_packet_options(args, options, datapath, check_interface=not broker)
    if script_options is not None and broker is None:
        _check_scripts(options, environ)  # a cluster's workers check against their own scripts
    if broker is not None and not broker.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"unsupported broker URL {broker!r} (use redis://HOST:PORT/N)")
    if broker is not None and script_options is not None:
        paths = [rule for rule in script_options.rules if "/" in rule]
        if paths:
            raise UserError(f"--script {paths[0]}: with --broker, workers load scripts only "
                            "from their own script directories; install it there (nsecluster "
                            "worker --datadir DIR) and name it without a path")
    first, size = host_group_sizes(ports.count("tcp"), ports.count("udp"), not ping_only,
                                   timing.level, args.min_hostgroup, args.max_hostgroup)
    return ScanPlan(
        scan_id=os.urandom(16).hex(),
        command_line=command_line,
        start_time=time.time(),
        target_tokens=tuple(args.targets),
        input_file=args.input_file,
        excludes=tuple(args.exclude),
        exclude_file=args.excludefile,
        address_family=6 if args.ipv6 else 4,
        options=options,
        outputs=_outputs(args),
        first_group_size=first,
        group_size=size,
        show_reason=bool(args.reason),
        open_only=bool(args.open),
        datapath=datapath,
        services=services,
        warnings=tuple(warnings),
        broker=broker,
        notices=notices,
    )


def _raw_packet_options(args, options: ScanOptions, datapath: DataPath,
                        check_interface: bool) -> tuple[ScanOptions, tuple[str, ...]]:
    """-e and --spoof-mac: the interface must exist here (a cluster's workers have their own),
    and the spoofed address is drawn once, so every worker sends the same one."""
    interface = getattr(args, "interface", None)
    spoof = getattr(args, "spoof_mac", None)
    if interface is None and spoof is None:
        return options, ()
    notices = []
    if interface is not None and check_interface:
        from worker.nse.netinfo import interface_ipv4

        if interface_ipv4(interface) is None:
            raise UserError(f"I cannot figure out what source address to use for device "
                            f"{interface}, does it even exist?")
    spoof_text = None
    if spoof is not None:
        from worker.macprefixes import (
            SpoofMacError,
            format_mac,
            load_mac_prefixes,
            spoof_mac,
            spoofing_line,
        )

        prefixes = load_mac_prefixes(datapath)
        try:
            mac = spoof_mac(spoof, prefixes)
        except SpoofMacError as exc:
            raise UserError(str(exc)) from None
        spoof_text = format_mac(mac)
        notices.append(spoofing_line(mac, prefixes))
    return dataclasses.replace(options, interface=interface, spoof_mac=spoof_text), \
        tuple(notices)


def _choose_ports(args, services: ServiceTable, warnings: list[str],
                  protocols: tuple[str, ...]) -> PortSet:
    if args.fast and args.ports is not None:
        raise UserError("You cannot use -F (fast scan) with -p (explicit port selection) but "
                        "see --top-ports to fast scan a range of ports")
    within = None
    if args.ports is not None:
        selection = parse_port_spec(args.ports, services, protocols)
        warnings.extend(selection.warnings)
        if not args.top_ports:
            return selection.for_protocols(protocols)
        within = selection
    if args.top_ports:
        selection = top_ports(args.top_ports, services, protocols, within=within)
    elif args.fast:
        selection = fast_ports(services, protocols)
    else:
        selection = default_ports(services, protocols)
    return selection.for_protocols(protocols)


def _version_options(args, ping_only: bool) -> VersionOptions | None:
    """-sV and its --version-* options; None without -sV (the others alone do nothing)."""
    intensity = 7
    if getattr(args, "version_intensity", None) is not None:
        text = str(args.version_intensity).strip()
        if not text.isdigit() or not 0 <= int(text) <= 9:
            raise UserError("version-intensity must be between 0 and 9")
        intensity = int(text)
    if getattr(args, "version_light", False):
        intensity = 2
    if getattr(args, "version_all", False):
        intensity = 9
    if not getattr(args, "version_scan", False) or ping_only:
        return None
    return VersionOptions(intensity=intensity, trace=bool(args.version_trace))


def _script_options(args, datapath: DataPath) -> ScriptOptions | None:
    """--script / -sC: None when no script scan was asked for (nse-spec §2.3)."""
    if not args.script and not args.default_scripts:
        return None
    from worker.nse.scriptargs import combine_args, parse_script_args, read_args_file

    file_text = None
    if args.script_args_file:
        file_text = read_args_file(args.script_args_file, datapath.find)
    args_text = combine_args(file_text, args.script_args)
    parse_script_args(args_text)  # arguments that do not parse stop the scan now
    return ScriptOptions(rules=tuple(args.script),
                         args=args_text,
                         timeout_ms=_time(args.script_timeout, "--script-timeout") or 0,
                         trace=bool(args.script_trace))


def _check_scripts(options: ScanOptions, environ: dict) -> None:
    """Select (not load) the scripts now, so a name that matches nothing fails before any
    packet; the worker selects again from its own directories."""
    from worker.nse.stage import ScriptSearch, select

    select(options, ScriptSearch(options.datadir, environ))


def _default_is_syn(privilege: str, broker: str | None, ipv6: bool) -> bool:
    """Nmap's default TCP scan: SYN when privileged (not told otherwise, and raw sockets
    open), connect otherwise. On a cluster the coordinator cannot know which workers will run
    the groups, so the default stays connect there; -sS asks for privileged workers. With -6
    too: our SYN prober is IPv4-only (IPv6 hosts of -sS are connect-scanned), so connect is
    the honest name for what an IPv6 scan does."""
    if broker is not None or ipv6:
        return False
    from worker.nsock.raw import considered_privileged, raw_sockets_allowed

    return considered_privileged(privilege) and raw_sockets_allowed()


def _time(value: str | None, option: str) -> int | None:
    return None if value is None else parse_time_ms(value, option)


def _dns_servers(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    servers = []
    for item in text.split(","):
        item = item.strip()
        try:
            servers.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise UserError(f"--dns-servers: {item!r} is not an IP address") from None
    return tuple(servers)


def _outputs(args) -> tuple[tuple[str, str], ...]:
    outputs = [(fmt, dest) for fmt, dest in (
        ("all", args.out_all), ("normal", args.out_normal), ("xml", args.out_xml),
        ("grepable", args.out_grepable), ("json", args.out_json)) if dest]
    if sum(dest == "-" for _, dest in outputs) > 1 or ("all", "-") in outputs:
        raise UserError("Cannot display multiple output types to stdout.")
    return tuple(outputs)
