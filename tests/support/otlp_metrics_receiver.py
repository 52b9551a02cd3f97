"""A real OTLP/HTTP (protobuf) metrics receiver on 127.0.0.1 for export tests."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2


def _operation(point: object) -> str | None:
    for pair in point.attributes:  # type: ignore[attr-defined]
        if pair.key == "db.operation.name":
            return pair.value.string_value
    return None


class OtlpHttpMetricsReceiver:
    """Serves ``POST /v1/metrics``; keeps every ExportMetricsServiceRequest in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/metrics":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver._requests.append(request)
                payload = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
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

    @property
    def requests(self) -> list[metrics_service_pb2.ExportMetricsServiceRequest]:
        with self._lock:
            return list(self._requests)

    def histogram_points(
        self, metric_name: str, scope_name: str, operation: str | None = None
    ) -> list[list[tuple[int, int]]]:
        """Per request received: [(aggregation temporality, count), ...] of the
        histogram ``metric_name`` from instrumentation scope ``scope_name`` (only the
        points whose ``db.operation.name`` is ``operation``, when given)."""
        out = []
        for request in self.requests:
            points = []
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    if scope.scope.name != scope_name:
                        continue
                    for metric in scope.metrics:
                        if metric.name == metric_name and metric.HasField("histogram"):
                            temporality = metric.histogram.aggregation_temporality
                            points.extend(
                                (temporality, point.count)
                                for point in metric.histogram.data_points
                                if operation is None or _operation(point) == operation
                            )
            out.append(points)
        return out

    def __enter__(self) -> OtlpHttpMetricsReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
