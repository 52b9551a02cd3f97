"""A real OTLP/HTTP (protobuf) metrics receiver on 127.0.0.1 for export tests."""

from __future__ import annotations

import threading

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tests.support.otlp_http_server import OtlpHttpServer


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
        self._http = OtlpHttpServer(
            "/v1/metrics",
            metrics_service_pb2.ExportMetricsServiceRequest,
            metrics_service_pb2.ExportMetricsServiceResponse(),
            self._record,
        )
        self.port = self._http.port

    def _record(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, headers: dict[str, str]
    ) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def endpoint(self) -> str:
        return self._http.endpoint

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
        self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()
