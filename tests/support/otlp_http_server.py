"""The HTTP side shared by the OTLP/HTTP (protobuf) test receivers, on 127.0.0.1."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OtlpHttpServer:
    """Serves ``POST path``: parses each body as ``request_type`` (gzip or not), hands
    it and the request headers to ``on_request`` and answers ``response`` serialized."""

    def __init__(
        self,
        path: str,
        request_type: type[Any],
        response: Any,
        on_request: Callable[[Any, dict[str, str]], None],
    ) -> None:
        payload = response.SerializeToString()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != path:
                    self.send_response(404)
                    self.end_headers()
                    return
                request = request_type()
                request.ParseFromString(body)
                on_request(request, dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
