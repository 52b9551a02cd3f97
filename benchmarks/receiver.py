"""A counting OTLP/gRPC receiver, run as its own process beside the benchmark.

    python -m benchmarks.receiver [--port 0] [--control-port 0]

It serves the OTLP trace, metrics and logs services on 127.0.0.1 (metrics and logs are
accepted and ignored, so a distro's default metrics/logs exporters do not fail), counts
every span it receives, and answers ``GET /count`` on a small HTTP control port with
``{"spans": N, "requests": M, "by_scope": {...}}``. Once both ports listen it prints one
line ``RECEIVER {"otlp": "127.0.0.1:P", "control": C}`` on stdout.

The counting is what the harness needs and nothing more: the spans are deserialised by
gRPC (as any collector would) and counted, not stored, so the receiver's own memory
stays flat however long the run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

HOST = "127.0.0.1"


class SpanCounter:
    """Thread-safe totals of what arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans = 0
        self.requests = 0
        self.by_scope: Counter[str] = Counter()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        counts: Counter[str] = Counter()
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                counts[scope_spans.scope.name] += len(scope_spans.spans)
        with self._lock:
            self.requests += 1
            self.spans += sum(counts.values())
            self.by_scope.update(counts)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "spans": self.spans,
                "requests": self.requests,
                "by_scope": dict(self.by_scope),
            }


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, counter: SpanCounter) -> None:
        self._counter = counter

    def Export(self, request, context):
        self._counter.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        return logs_service_pb2.ExportLogsServiceResponse()


def _control_handler(counter: SpanCounter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/count":
                self.send_error(404)
                return
            body = json.dumps(counter.snapshot()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one request per cell: no access log on stderr

    return Handler


class CountingReceiver:
    """The gRPC server and the HTTP control port, started and stopped together."""

    def __init__(self, port: int = 0, control_port: int = 0) -> None:
        self.counter = SpanCounter()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self.counter), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsService(), self._server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(), self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:{port}")
        self._http = ThreadingHTTPServer((HOST, control_port), _control_handler(self.counter))
        self.control_port = self._http.server_address[1]
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> CountingReceiver:
        self._server.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._server.stop(grace=1).wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Counting OTLP/gRPC receiver")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=4 * 3600)
    args = parser.parse_args(argv)
    receiver = CountingReceiver(args.port, args.control_port).start()
    print(
        "RECEIVER "
        + json.dumps({"otlp": f"{HOST}:{receiver.port}", "control": receiver.control_port}),
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    # The harness terminates this process when it is done; should the harness die
    # first, the receiver notices it was orphaned, and it never outlives --max-seconds.
    parent = os.getppid()
    deadline = time.monotonic() + args.max_seconds
    while not stopped.wait(1.0):
        if os.getppid() != parent or time.monotonic() > deadline:
            break
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
