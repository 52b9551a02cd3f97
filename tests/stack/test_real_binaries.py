"""The real Collector (built from tools/collector/builder-config.yaml) and the real
Jaeger v2 (tools/jaeger/go.mod) read the repository's config files: `validate` accepts
each one, each starts with it, and locally nothing listens beyond 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from . import local_stack as ls
from .conftest import REPO_ROOT, free_port

COLLECTOR_CONFIGS = ["collector.yaml", "agent.yaml", "gateway.yaml"]
KINDS = ["receivers", "processors", "exporters", "connectors", "extensions"]
MANIFEST = REPO_ROOT / "tools" / "collector" / "builder-config.yaml"


@pytest.fixture(scope="module")
def built() -> ls.Binaries:
    return ls.binaries()


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_collector_validates_config(built, name):
    """With the defaults the containers use (no variable set), as compose runs them."""
    result = run(str(built.otelcol), "validate", "--config", str(ls.CONFIG_DIR / name))
    assert result.returncode == 0, result.stdout + result.stderr


def test_jaeger_validates_config(built):
    result = run(str(built.jaeger), "validate", "--config", str(ls.CONFIG_DIR / "jaeger.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_rejects_a_broken_config(built, tmp_path: Path):
    """validate is not a no-op: a wrong key in a tail-sampling policy fails it."""
    config = yaml.safe_load((ls.CONFIG_DIR / "collector.yaml").read_text())
    config["processors"]["tail_sampling"]["policies"][1]["boolean_attribute"]["keyy"] = "x"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = run(str(built.otelcol), "validate", "--config", str(broken))
    assert result.returncode != 0
    assert "keyy" in result.stdout + result.stderr


def components(built: ls.Binaries) -> dict:
    result = run(str(built.otelcol), "components")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def used_types(name: str) -> dict[str, set[str]]:
    config = yaml.safe_load((ls.CONFIG_DIR / name).read_text())
    return {kind: {cid.split("/", 1)[0] for cid in config.get(kind) or {}} for kind in KINDS}


def test_the_binary_has_exactly_the_components_the_configs_use(built):
    """The distribution is the configs' component set, nothing missing, nothing extra."""
    found = components(built)
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name in COLLECTOR_CONFIGS:
        for kind, types in used_types(name).items():
            used[kind] |= types
    for kind in KINDS:
        assert {c["name"] for c in found[kind]} == used[kind], kind
    assert found["buildinfo"]["version"] == built.collector_release


def test_manifest_compose_and_builder_share_one_release(built):
    manifest = yaml.safe_load(MANIFEST.read_text())
    release = manifest["dist"]["version"]
    assert built.collector_release == release
    modules = [
        entry["gomod"] for kind in (*KINDS, "providers") for entry in manifest.get(kind) or []
    ]
    assert modules and all(m.endswith(f" v{release}") for m in modules), modules
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["otel-collector"]["image"] == (
        f"otel/opentelemetry-collector-contrib:{release}"
    )


def test_compose_jaeger_is_the_release_of_the_built_module(built):
    """Jaeger tags every release v1.N.0 / v2.M.0 on one commit; the module uses v1.N.0."""
    go_mod = (REPO_ROOT / "tools" / "jaeger" / "go.mod").read_text()
    image_release = re.search(r"jaegertracing/jaeger:(\d+\.\d+\.\d+)", go_mod)
    assert image_release, "tools/jaeger/go.mod names the image release it matches"
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["jaeger"]["image"] == f"jaegertracing/jaeger:{image_release[1]}"
    result = run(str(built.jaeger), "version")
    assert result.returncode == 0, result.stderr


def loopback_env_for(name: str) -> dict[str, str]:
    if name != "agent.yaml":
        return {}
    # nothing listens there: the agent starts and keeps retrying, which is all this checks
    return {
        "OTEL_DB_GATEWAY_DNS_NAME": "localhost",
        "OTEL_DB_GATEWAY_PORT": str(free_port()),
        "OTEL_DB_GATEWAY_ENDPOINT": ls.loopback(),
    }


@pytest.mark.parametrize("name", COLLECTOR_CONFIGS)
def test_collector_starts_with_config_on_loopback_only(built, name, tmp_path: Path):
    collector = ls.collector(built.otelcol, name, tmp_path, **loopback_env_for(name))
    collector.start()
    try:
        assert collector.process is not None
        sockets = ls.listening_sockets(collector.process.pid)
        assert sockets, "no listening socket found"
        assert all(s.startswith("127.0.0.1:") for s in sockets), sockets
        assert collector.total("otelcol_process_uptime") > 0  # its own telemetry, on loopback
    finally:
        collector.stop()
    log = collector.log()
    assert "Everything is ready" in log, log[-3000:]
    # renamed components keep their old type name as an alias that warns at start-up
    assert "deprecated" not in log.lower(), log[-3000:]


def test_jaeger_starts_with_config_on_loopback_only(built, tmp_path: Path):
    jaeger = ls.jaeger(built.jaeger, tmp_path)
    jaeger.start()
    try:
        assert jaeger.process is not None
        sockets = ls.listening_sockets(jaeger.process.pid)
        assert sockets and all(s.startswith("127.0.0.1:") for s in sockets), sockets
        assert jaeger.services() == []
        status, body = ls.http_get(jaeger.api + "/")
        assert status == 200 and body  # the module build's placeholder UI page
    finally:
        jaeger.stop()
