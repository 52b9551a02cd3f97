"""The acceptance run: the workload under the launcher, received on real OTLP receivers."""

from __future__ import annotations

import collections

import pytest

from otel_db import attributes as attr
from otel_db.version import __version__
from tests.integration.launcher import run_script
from tests.stack.otlp_receiver import OtlpTraceReceiver
from tests.support.otlp_http_receiver import OtlpHttpTraceReceiver

# Redis spans carry no key in their text (contrib replaces arguments with "?"): the two
# redis commands are matched by command name instead.
MARKERS = [f"otel_db_wl_{n}" for n in range(1, 6)] + ["SET", "GET"]
STABLE = (attr.DB_SYSTEM_NAME, attr.DB_QUERY_TEXT, attr.DB_OPERATION_NAME)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _spans_per_marker(spans) -> dict[str, list]:
    found: dict[str, list] = collections.defaultdict(list)
    for span in spans:
        text = str(span.attributes.get(attr.DB_QUERY_TEXT, ""))
        if span.attributes.get(attr.DB_SYSTEM_NAME) == "redis":
            found[text.split()[0]].append(span)
            continue
        for marker in MARKERS:
            if marker in text:
                found[marker].append(span)
    return found


def _check(spans) -> None:
    per_marker = _spans_per_marker(spans)
    assert {m: len(per_marker[m]) for m in MARKERS} == dict.fromkeys(MARKERS, 1)
    for marker, (span,) in per_marker.items():
        attributes = span.attributes
        for name in STABLE:
            assert name in attributes, (marker, name, attributes)
        assert attr.LEGACY_DB_STATEMENT not in attributes, marker
        assert attr.LEGACY_DB_SYSTEM not in attributes, marker
        if attributes[attr.DB_SYSTEM_NAME] in ("postgresql", "redis"):
            assert attributes[attr.SERVER_ADDRESS] == "127.0.0.1", marker
            assert attributes[attr.SERVER_PORT] in (5432, 6379), marker
        resource = span.resource_attributes
        assert resource["service.name"] == "otel-db-launcher-test"
        assert resource[attr.TELEMETRY_DISTRO_NAME] == "otel_db"
        assert resource[attr.TELEMETRY_DISTRO_VERSION] == __version__
    # Every statement belongs to the workload span, directly or through its transaction span.
    by_id = {span.span.span_id: span for span in spans}

    def application_parent(span):
        parent = by_id.get(span.span.parent_span_id)
        while parent is not None and attr.TRANSACTION_ID in parent.attributes:
            parent = by_id.get(parent.span.parent_span_id)
        return parent

    workload = [s for s in spans if s.name == "workload"]
    assert len(workload) == 1
    for marker, (span,) in per_marker.items():
        parent = application_parent(span)
        assert parent is not None and parent.name == "workload", marker

    # Pool and transaction facts survive the wire: the PostgreSQL statements ran on a
    # pooled connection inside SQLAlchemy's autobegun transaction, closed without commit
    # having only read: released.
    for marker in ("otel_db_wl_1", "otel_db_wl_2"):
        (span,) = per_marker[marker]
        assert span.attributes[attr.POOL_MAX] >= 1, marker
        assert 0 < span.attributes[attr.POOL_UTILIZATION] <= 1, marker
        assert span.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_RELEASED, marker
        transaction = by_id[span.span.parent_span_id]
        assert transaction.attributes[attr.TRANSACTION_ID] == span.attributes[attr.TRANSACTION_ID]
        assert transaction.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2


def _export_workload(
    receiver_class: type = OtlpTraceReceiver,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    *,
    instrumented: bool = True,
):
    """Runs the workload against a fresh receiver; returns the process result and the spans."""
    with receiver_class() as receiver:
        if receiver_class is OtlpHttpTraceReceiver:
            target = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
        else:
            target = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{receiver.endpoint}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            }
        result = run_script(
            "workload.py", args, env={**target, **(env or {})}, instrumented=instrumented
        )
        assert result.returncode == 0, result.stderr
        spans = receiver.wait_for_spans(lambda s: any(x.name == "workload" for x in s), 20)
    return result, spans


def test_grpc_export_of_the_acceptance_workload():
    result, spans = _export_workload(OtlpTraceReceiver)
    _check(spans)
    assert "falls outside of that range" not in result.stderr


def test_http_export_of_the_acceptance_workload():
    _, spans = _export_workload(OtlpHttpTraceReceiver)
    _check(spans)


def test_configure_gives_the_same_result_without_the_launcher():
    _, spans = _export_workload(args=("--configure",), instrumented=False)
    _check(spans)


def test_configuring_twice_adds_no_processor_or_resource_entry():
    once = run_script(
        "workload.py",
        ["--configure", "--show-pipeline"],
        instrumented=False,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    twice = run_script(
        "workload.py",
        ["--configure-twice", "--show-pipeline"],
        instrumented=False,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    launched_and_configured = run_script(
        "workload.py", ["--configure", "--show-pipeline"], env={"OTEL_TRACES_EXPORTER": "console"}
    )
    for result in (once, twice, launched_and_configured):
        assert result.returncode == 0, result.stderr

    def pipeline(result):
        return [line for line in result.stdout.splitlines() if line.startswith(("PROC", "RES"))]

    assert pipeline(once) == pipeline(twice) == pipeline(launched_and_configured)
    assert "PROCESSORS=1" in pipeline(once)
    assert (
        "Overriding of current TracerProvider" not in twice.stderr + launched_and_configured.stderr
    )


def test_users_semconv_choice_wins():
    _, spans = _export_workload(env={"OTEL_SEMCONV_STABILITY_OPT_IN": "database/dup,http/dup"})
    per_marker = _spans_per_marker(spans)
    for marker in MARKERS:
        (span,) = per_marker[marker]
        assert attr.DB_QUERY_TEXT in span.attributes, marker
        assert attr.LEGACY_DB_STATEMENT in span.attributes, marker


def test_bad_distro_setting_warns_once_and_telemetry_still_flows():
    result, spans = _export_workload(env={"OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": "fast"})
    _check(spans)
    warnings = [line for line in result.stderr.splitlines() if "SLOW_QUERY_THRESHOLD_MS" in line]
    assert len(warnings) == 1, result.stderr
    assert "'fast'" in warnings[0] and "500" in warnings[0]
