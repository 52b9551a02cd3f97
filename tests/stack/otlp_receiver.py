"""A real OTLP/gRPC trace receiver for tests: records every ExportTraceServiceRequest.

Built from opentelemetry-proto's generated TraceServiceServicer and grpcio, listening on
127.0.0.1 only. Reusable by any test that needs to see what actually went over the wire::

    with OtlpTraceReceiver() as receiver:
        ...  # point an exporter or collector at receiver.endpoint
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 3, timeout=10)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received, with the resource and scope it arrived under."""

    span: Span
    resource: Resource
    scope_name: str

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def attributes(self) -> dict[str, object]:
        return attributes_to_dict(self.span.attributes)

    @property
    def resource_attributes(self) -> dict[str, object]:
        return attributes_to_dict(self.resource.attributes)


def any_value_to_python(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_to_dict(attributes: list[KeyValue]) -> dict[str, object]:
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}


class _RecordingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, on_request: Callable[[trace_service_pb2.ExportTraceServiceRequest], None]):
        self._on_request = on_request

    def Export(self, request, context):
        self._on_request(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class RecordingReceiver:
    """What every test receiver shares: recorded requests, their spans, and waiting for them."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def _record(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    @property
    def requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        with self._lock:
            return list(self._requests)

    def spans(self) -> list[ReceivedSpan]:
        received = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        received.append(
                            ReceivedSpan(span, resource_spans.resource, scope_spans.scope.name)
                        )
        return received

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float
    ) -> list[ReceivedSpan]:
        """Block until predicate(spans) holds; raise TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                spans = self.spans()
                if predicate(spans):
                    return spans
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"condition not met within {timeout}s; received {len(spans)} spans: "
                        f"{sorted(s.name for s in spans)}"
                    )
                self._lock.wait(min(remaining, 0.2))


class OtlpTraceReceiver(RecordingReceiver):
    """OTLP/gRPC TraceService on 127.0.0.1:<free port>; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _RecordingTraceService(self._record), self._server
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        self.host = host

    @property
    def endpoint(self) -> str:
        """host:port, the form OTLP/gRPC clients take."""
        return f"{self.host}:{self.port}"

    def start(self) -> OtlpTraceReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait(5)

    def __enter__(self) -> OtlpTraceReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
