"""A real OTLP/HTTP (protobuf) trace receiver on 127.0.0.1 for export tests."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.stack.otlp_receiver import RecordingReceiver
from tests.support.otlp_http_server import OtlpHttpServer


class OtlpHttpTraceReceiver(RecordingReceiver):
    """Serves ``POST /v1/traces``; records every ExportTraceServiceRequest."""

    def __init__(self) -> None:
        super().__init__()
        self.headers_seen: list[dict[str, str]] = []
        self._http = OtlpHttpServer(
            "/v1/traces",
            trace_service_pb2.ExportTraceServiceRequest,
            trace_service_pb2.ExportTraceServiceResponse(),
            self._on_request,
        )
        self.port = self._http.port

    def _on_request(
        self, request: trace_service_pb2.ExportTraceServiceRequest, headers: dict[str, str]
    ) -> None:
        self.headers_seen.append(headers)
        self._record(request)

    @property
    def endpoint(self) -> str:
        return self._http.endpoint

    def __enter__(self) -> OtlpHttpTraceReceiver:
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()
