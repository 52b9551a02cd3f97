"""A real OTLP/HTTP (protobuf) trace receiver on 127.0.0.1 for export tests."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.stack.otlp_receiver import ReceivedSpan


class OtlpHttpTraceReceiver:
    """Serves ``POST /v1/traces``; records every ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.headers_seen: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver._requests.append(request)
                    receiver.headers_seen.append(dict(self.headers))
                    receiver._lock.notify_all()
                payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self._requests)
        return [
            ReceivedSpan(span, resource_spans.resource, scope_spans.scope.name)
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def wait_for_spans(
        self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float
    ) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                spans = self.spans()
                if predicate(spans):
                    return spans
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met in {timeout}s; got {len(spans)} spans")
                self._lock.wait(min(remaining, 0.2))

    def __enter__(self) -> OtlpHttpTraceReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
