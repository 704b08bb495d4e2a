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


def test_compose_file_is_valid_and_has_redis_and_the_cli_image():
    config = compose_config()
    services = config["services"]
    assert {"redis", "nsecluster"} <= set(services)
    assert services["nsecluster"]["build"]["dockerfile"] == "deploy/Dockerfile"
    port = services["redis"]["ports"][0]  # a string or a mapping, by compose version
    host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
    assert host_ip == "127.0.0.1"  # Redis never listens beyond this machine


def test_every_dockerfile_copy_source_is_in_the_repository():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    sources = [word for line in dockerfile.splitlines() if line.startswith("COPY ")
               for word in line.split()[1:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
    assert re.search(r"pip install .*-e \.", dockerfile)
