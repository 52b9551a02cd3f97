"""OTLP over TLS with a CA file and header auth, against local TLS receivers.

The app runs under the real launcher with ``OTEL_EXPORTER_OTLP_ENDPOINT=https://localhost:
<port>``, ``OTEL_EXPORTER_OTLP_CERTIFICATE=<throwaway CA>`` and
``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<secret>``. The receivers (gRPC and
HTTPS) reject any request without that exact header and never echo it back, so the
secret showing up in the app's output could only come from the client side.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from tests.support.tls_receiver import (
    TlsFiles,
    TlsOtlpHttpTraceReceiver,
    TlsOtlpTraceReceiver,
    make_tls_files,
)

from .conftest import SMALL_APP, app_env, run_app

SECRET = "s3cret-token-canary-41c9"
WRONG = "wrong-token-canary-93ab"
PROTOCOLS = {"grpc": TlsOtlpTraceReceiver, "http/protobuf": TlsOtlpHttpTraceReceiver}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tls_receiver(tls: TlsFiles, protocol: str) -> Iterator[TlsOtlpTraceReceiver]:
    receiver = PROTOCOLS[protocol](tls, authorization=f"Bearer {SECRET}").start()
    yield receiver
    receiver.stop()


#: requests lets these override the exporter's own CA file (see the xfail below).
REQUESTS_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

#: The OTLP/HTTP exporter 1.45.0 sends through urllib3 unless given a requests session
#: (so the variables above do not reach it); 1.45.1 went back to requests.
HTTP_EXPORTER_USES_REQUESTS = metadata.version("opentelemetry-exporter-otlp-proto-http") != "1.45.0"


def _env(receiver: TlsOtlpTraceReceiver, tls: TlsFiles, protocol: str, **extra: str):
    env = app_env(
        receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_CERTIFICATE=str(tls.ca_file),
        OTEL_EXPORTER_OTLP_TIMEOUT="2",
        OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS="2000",
        **extra,
    )
    for name in REQUESTS_CA_VARIABLES:
        env.pop(name, None)
    return env


def test_header_parser_warning_is_masked(caplog: pytest.LogCaptureFixture):
    from opentelemetry.util.re import parse_env_headers

    from otel_db.export import attach_secret_masking

    attach_secret_masking()
    with caplog.at_level("WARNING", logger="opentelemetry.util.re"):
        headers = parse_env_headers(f'authorization=Bearer "{SECRET}",x-team=a', liberal=True)
    assert headers == {"x-team": "a"}
    (record,) = caplog.records
    assert SECRET not in record.getMessage()
    assert record.getMessage().endswith("authorization=***")


def _assert_never_printed(app, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in app.stdout and secret not in app.stderr, app.stderr


def test_spans_arrive_over_tls_with_the_header(
    tls_receiver: TlsOtlpTraceReceiver, tls: TlsFiles, protocol: str, tmp_path: Path
):
    env = _env(
        tls_receiver, tls, protocol, OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{SECRET}"
    )

    app = run_app(SMALL_APP, env, tmp_path)

    assert app.returncode == 0, app.stderr
    spans = tls_receiver.wait_for_spans(lambda s: {"job", "SELECT"} <= {x.name for x in s}, 15)
    assert tls_receiver.rejected == 0
    assert {s.name for s in spans} == {"job", "SELECT"}
    assert "could not be exported" not in app.stderr, app.stderr
    _assert_never_printed(app, SECRET)


def test_wrong_header_is_rejected_exit_is_bounded_with_one_summary(
    tls_receiver: TlsOtlpTraceReceiver, tls: TlsFiles, protocol: str, tmp_path: Path
):
    env = _env(
        tls_receiver, tls, protocol, OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{WRONG}"
    )

    app = run_app(SMALL_APP, env, tmp_path)

    assert app.returncode == 0, app.stderr
    assert "app ran" in app.stdout
    print(f"{protocol}, rejected by the collector: exit after {app.seconds:.1f} s (bound 2 s)")
    assert app.seconds < 10, app.stderr  # 2 s bound + interpreter start and teardown
    assert tls_receiver.rejected >= 1 and tls_receiver.spans() == []
    summary = [line for line in app.stderr.splitlines() if "could not be exported" in line]
    assert len(summary) == 1, app.stderr
    assert "2 spans" in summary[0], summary[0]
    # the real cause when the collector's answer came before the exit bound (on a loaded
    # machine the first export may still be in its TLS handshake when the bound ends it)
    assert "Shutdown in progress" not in summary[0], summary[0]
    if "answered" in summary[0]:
        assert "HTTP 401" in summary[0] or "gRPC UNAUTHENTICATED" in summary[0], summary[0]
    else:
        assert "did not answer within the exit bound" in summary[0], summary[0]
    _assert_never_printed(app, WRONG, SECRET)


def test_no_header_is_rejected(
    tls_receiver: TlsOtlpTraceReceiver, tls: TlsFiles, protocol: str, tmp_path: Path
):
    app = run_app(SMALL_APP, _env(tls_receiver, tls, protocol), tmp_path)

    assert app.returncode == 0, app.stderr
    assert tls_receiver.rejected >= 1 and tls_receiver.spans() == []
    assert len([x for x in app.stderr.splitlines() if "could not be exported" in x]) == 1


def test_a_malformed_header_value_is_never_logged(
    tls_receiver: TlsOtlpTraceReceiver, tls: TlsFiles, protocol: str, tmp_path: Path
):
    # A quote is not allowed in a header value: the SDK warns "Header format invalid"
    # and, stock, prints the whole name=value pair, secret included.
    env = _env(
        tls_receiver, tls, protocol, OTEL_EXPORTER_OTLP_HEADERS=f'authorization=Bearer "{SECRET}"'
    )

    app = run_app(SMALL_APP, env, tmp_path)

    assert app.returncode == 0, app.stderr
    assert "Header format invalid" in app.stderr, app.stderr
    _assert_never_printed(app, SECRET)


@pytest.mark.xfail(
    HTTP_EXPORTER_USES_REQUESTS,
    strict=True,
    reason="OTLP/HTTP goes through requests, and requests lets REQUESTS_CA_BUNDLE / "
    "CURL_CA_BUNDLE in the environment replace the session's CA file: "
    "OTEL_EXPORTER_OTLP_CERTIFICATE is then ignored (see docs/reliability.md)",
)
def test_http_ca_file_wins_over_requests_ca_bundle(tls: TlsFiles, tmp_path: Path):
    with TlsOtlpHttpTraceReceiver(tls, authorization=f"Bearer {SECRET}") as receiver:
        env = _env(
            receiver,
            tls,
            "http/protobuf",
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{SECRET}",
        )
        env["REQUESTS_CA_BUNDLE"] = public_ca_bundle()  # as set in many containers
        app = run_app(SMALL_APP, env, tmp_path)
        assert app.returncode == 0, app.stderr
        assert "CERTIFICATE_VERIFY_FAILED" not in app.stderr
        receiver.wait_for_spans(lambda s: len(s) >= 2, 5)


def public_ca_bundle() -> str:
    """A CA bundle without the throwaway CA: certifi's, as requests itself ships."""
    import certifi

    return certifi.where()
