"""The deployment files are valid: compose checks offline, Dockerfile sources exist."""
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import REPO


def compose_config():
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is required (Debian package docker-compose; .ci/setup "
                    "installs it)")
    proc = subprocess.run(["docker-compose", "-f", str(REPO / "compose.yaml"), "config"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_file_starts_the_whole_cluster():
    services = compose_config()["services"]
    assert set(services) == {"redis", "worker", "worker-privileged", "flower", "coordinator"}
    port = services["redis"]["ports"][0]  # a string or a mapping, by compose version
    host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
    assert host_ip == "127.0.0.1"  # Redis never listens beyond this machine
    for name in ("worker", "worker-privileged", "flower", "coordinator"):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["environment"]["NSECLUSTER_BROKER"] == "redis://redis:6379/0"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][0] == "worker"
    assert "--privileged" not in services["worker"]["command"]
    privileged = services["worker-privileged"]
    assert "--privileged" in privileged["command"]
    assert set(privileged["cap_add"]) == {"NET_RAW", "NET_ADMIN"}
    assert services["flower"]["command"][0] == "flower"
    assert services["coordinator"]["profiles"] == ["cli"]  # one-shot: docker compose run


def test_every_command_in_compose_and_the_units_parses():
    """The commands compose and systemd run are ones our command line accepts."""
    from worker.cluster.command import build_worker_parser

    services = compose_config()["services"]
    commands = [services[name]["command"] for name in ("worker", "worker-privileged")]
    for unit in sorted((REPO / "deploy" / "systemd").glob("*.service")):
        text = unit.read_text()
        assert "EnvironmentFile=/etc/nsecluster/env" in text
        (exec_line,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        words = exec_line.split("=", 1)[1].split()
        assert words[0] == "/usr/local/bin/nsecluster"
        if words[1] == "worker":
            commands.append(words[1:])
        if "--privileged" in words:
            assert "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN" in text
    assert len(commands) == 4
    for command in commands:
        build_worker_parser().parse_args(command[1:])


def test_every_dockerfile_copy_source_is_in_the_repository():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    sources = [word for line in dockerfile.splitlines() if line.startswith("COPY ")
               for word in line.split()[1:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
    assert re.search(r"pip install .*-e \.", dockerfile)
