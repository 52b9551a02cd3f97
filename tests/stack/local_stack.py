"""The real Collector and Jaeger as local processes on 127.0.0.1, for the stack tests.

The binaries are the ones ``scripts/stack.sh build`` puts in its cache (``.ci/run`` builds
them before pytest); ``scripts/stack.sh paths`` says where, so the cache key lives in one
place. Every listening address comes from the ``${env:...}`` variables of the config files
in collector-config/, set here to free ports on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO_ROOT, free_port

CONFIG_DIR = REPO_ROOT / "collector-config"
STACK_SCRIPT = REPO_ROOT / "scripts" / "stack.sh"


@dataclass(frozen=True)
class Binaries:
    otelcol: Path
    jaeger: Path
    collector_release: str
    jaeger_module_version: str


def binaries() -> Binaries:
    """The built binaries; fails (never skips) with what to run when they are missing."""
    out = subprocess.run(
        ["bash", str(STACK_SCRIPT), "paths"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    paths = dict(line.split("=", 1) for line in out.stdout.split())
    found = Binaries(
        Path(paths["OTELCOL_BIN"]),
        Path(paths["JAEGER_BIN"]),
        paths["COLLECTOR_RELEASE"],
        paths["JAEGER_MODULE_VERSION"],
    )
    missing = [str(p) for p in (found.otelcol, found.jaeger) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"stack binaries not built: {', '.join(missing)}. Run `bash scripts/stack.sh build` "
            "(first build takes minutes; .ci/run does it before pytest).",
            pytrace=False,
        )
    return found


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Polls ``check`` until it returns something truthy; bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as error:  # not listening yet, half-written JSON
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not true after {timeout}s (last: {str(last)[:300]})")


def loopback() -> str:
    return f"127.0.0.1:{free_port()}"


@dataclass
class Program:
    """One collector-framework process (otelcol or jaeger) with its config and env."""

    name: str
    binary: Path
    configs: list[str]
    env: dict[str, str]
    health_url: str
    log_file: Path
    process: subprocess.Popen | None = None
    _log: Any = field(default=None, repr=False)

    def command(self, *extra: str) -> list[str]:
        args = [str(self.binary)]
        for config in self.configs:
            args += ["--config", config]
        return args + list(extra)

    def start(self, timeout: float = 60) -> Program:
        assert self.process is None or self.process.poll() is not None, "already running"
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(self._healthy, timeout, f"{self.name} healthy at {self.health_url}")
        except TimeoutError as error:
            self.stop()
            raise AssertionError(f"{error}\n{self.name} log:\n{self.log()[-4000:]}") from None
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
            )
        return http_get(self.health_url, timeout=2)[0] == 200

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@dataclass
class Collector(Program):
    metrics_url: str = ""
    prometheus_url: str = ""
    otlp_grpc: str = ""

    def telemetry(self) -> dict[str, float]:
        """The Collector's own metrics (name{labels} -> value), from its telemetry port."""
        return parse_prometheus(http_get(self.metrics_url)[1].decode())

    def total(self, metric: str, **labels: str) -> float:
        """Sum of a telemetry counter over the series whose labels include ``labels``.

        ``metric`` without the ``_total`` suffix, which the Collector's own Prometheus
        endpoint leaves out in this release and may add in another."""
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(
            value
            for key, value in self.telemetry().items()
            if key.split("{", 1)[0].removesuffix("_total") == metric
            and all(w in key for w in wanted)
        )


def parse_prometheus(text: str) -> dict[str, float]:
    series: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            series[key] = float(value)
        except ValueError:
            continue
    return series


def collector(binary: Path, config: str, tmp: Path, name: str = "otelcol", **env: str) -> Collector:
    """A Collector on free loopback ports running collector-config/<config>."""
    health, grpc, http, prom = loopback(), loopback(), loopback(), loopback()
    telemetry_port = free_port()
    queue = tmp / f"{name}-queue"
    queue.mkdir(parents=True, exist_ok=True)
    base = {
        "OTEL_DB_HEALTH_CHECK_ENDPOINT": health,
        "OTEL_DB_OTLP_GRPC_ENDPOINT": grpc,
        "OTEL_DB_OTLP_HTTP_ENDPOINT": http,
        "OTEL_DB_PROMETHEUS_ENDPOINT": prom,
        "OTEL_DB_TELEMETRY_HOST": "127.0.0.1",
        "OTEL_DB_TELEMETRY_PORT": str(telemetry_port),
        "OTEL_DB_QUEUE_DIRECTORY": str(queue),
    }
    return Collector(
        name=name,
        binary=binary,
        configs=[str(CONFIG_DIR / config)],
        env={**base, **env},
        health_url=f"http://{health}/",
        log_file=tmp / f"{name}.log",
        metrics_url=f"http://127.0.0.1:{telemetry_port}/metrics",
        prometheus_url=f"http://{prom}/metrics",
        otlp_grpc=grpc,
    )


@dataclass
class Jaeger(Program):
    api: str = ""
    otlp_grpc: str = ""

    def get(self, path: str, **params: Any) -> Any:
        url = f"{self.api}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url, timeout=10)
        assert status == 200, f"GET {url}: {status} {body[:300]!r}"
        return json.loads(body)

    def services(self) -> list[str]:
        return self.get("/api/services")["data"] or []

    def traces(self, service: str, tags: dict[str, str] | None = None, limit: int = 1000) -> list:
        """/api/traces as the UI's search calls it: service, optional tags, a lookback."""
        params: dict[str, Any] = {"service": service, "limit": limit, "lookback": "1h"}
        now_us = int(time.time() * 1_000_000)
        params.update(start=now_us - 3_600_000_000, end=now_us + 60_000_000)
        if tags:
            params["tags"] = json.dumps(tags)
        return self.get("/api/traces", **params)["data"] or []


def jaeger(binary: Path, tmp: Path, name: str = "jaeger", **env: str) -> Jaeger:
    """Jaeger v2 on free loopback ports running collector-config/jaeger.yaml."""
    health, query_http, query_grpc, grpc, http = (loopback() for _ in range(5))
    base = {
        "JAEGER_HEALTH_CHECK_ENDPOINT": health,
        "JAEGER_QUERY_HTTP_ENDPOINT": query_http,
        "JAEGER_QUERY_GRPC_ENDPOINT": query_grpc,
        "JAEGER_OTLP_GRPC_ENDPOINT": grpc,
        "JAEGER_OTLP_HTTP_ENDPOINT": http,
        "JAEGER_TELEMETRY_HOST": "127.0.0.1",
        "JAEGER_TELEMETRY_PORT": str(free_port()),
        # nothing listens there: the Monitor tab's metric store is not part of these tests
        "JAEGER_PROMETHEUS_URL": f"http://{loopback()}",
    }
    return Jaeger(
        name=name,
        binary=binary,
        configs=[str(CONFIG_DIR / "jaeger.yaml")],
        env={**base, **env},
        health_url=f"http://{health}/status",
        log_file=tmp / f"{name}.log",
        api=f"http://{query_http}",
        otlp_grpc=grpc,
    )


def listening_sockets(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from ``ss``)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10)
    return [line.split()[3] for line in out.stdout.splitlines() if re.search(rf"pid={pid}\b", line)]


def span_tags(span: dict) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def process_tags(trace: dict, span: dict) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in trace["processes"][span["processID"]].get("tags", [])}


def otlp_tracer_provider(collector: Collector, service: str):
    """A plain SDK TracerProvider (no otel_db) exporting each span to ``collector``."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"http://{collector.otlp_grpc}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
