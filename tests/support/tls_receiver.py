"""OTLP receivers over TLS that require an ``authorization`` header, for export tests.

``make_tls_files(directory)`` writes a throwaway CA and a server certificate for
``localhost`` / 127.0.0.1 signed by it (made with ``cryptography``, valid one day).
``TlsOtlpTraceReceiver`` is the gRPC receiver of ``tests.stack.otlp_receiver`` behind
``grpc.ssl_server_credentials``; ``TlsOtlpHttpTraceReceiver`` serves ``POST /v1/traces``
over HTTPS. Both listen on 127.0.0.1 only, reject a request without the expected
``authorization`` value (gRPC UNAUTHENTICATED / HTTP 401) and count the rejections.
Neither ever echoes a header value back: a test can then check that the secret never
appears in the app's output.
"""

from __future__ import annotations

import datetime
import hmac
import ipaddress
import ssl
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.stack.otlp_receiver import OtlpTraceReceiver, _RecordingTraceService


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # what the client trusts (OTEL_EXPORTER_OTLP_CERTIFICATE)
    cert_file: Path  # the server's chain
    key_file: Path
    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid_from, valid_to = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("otel_db test CA"))
        .issuer_name(_name("otel_db test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = server_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        cert_pem=cert_pem,
        key_pem=key_pem,
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert_pem)
    files.key_file.write_bytes(key_pem)
    return files


def _authorized(received: str | None, expected: str) -> bool:
    return received is not None and hmac.compare_digest(received.encode(), expected.encode())


class _RequireAuthorization(grpc.ServerInterceptor):
    """Rejects any call whose ``authorization`` metadata is not the expected value."""

    def __init__(self, expected: str, on_reject: Callable[[], None]) -> None:
        self._expected = expected
        self._on_reject = on_reject

        def deny(request: object, context: grpc.ServicerContext) -> None:
            self._on_reject()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong authorization")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        if _authorized(metadata.get("authorization"), self._expected):
            return continuation(handler_call_details)
        return self._deny


class TlsOtlpTraceReceiver(OtlpTraceReceiver):
    """OTLP/gRPC over TLS on 127.0.0.1:<free port>, requiring ``authorization``."""

    def __init__(self, tls: TlsFiles, authorization: str) -> None:
        # Not super().__init__(): that binds an insecure port; the rest is inherited.
        self._lock = threading.Condition()
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.rejected = 0
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            interceptors=[_RequireAuthorization(authorization, self._count_rejection)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _RecordingTraceService(self._record), self._server
        )
        credentials = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
        self.host = "127.0.0.1"
        self.port = self._server.add_secure_port(f"{self.host}:0", credentials)

    def _count_rejection(self) -> None:
        with self._lock:
            self.rejected += 1
            self._lock.notify_all()

    @property
    def url(self) -> str:
        """The endpoint as an app sets it: https and the certificate's host name."""
        return f"https://localhost:{self.port}"


class TlsOtlpHttpTraceReceiver(OtlpTraceReceiver):
    """OTLP/HTTP (protobuf) over HTTPS on 127.0.0.1, requiring ``authorization``."""

    def __init__(self, tls: TlsFiles, authorization: str) -> None:
        self._lock = threading.Condition()
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not _authorized(self.headers.get("authorization"), authorization):
                    receiver._count_rejection()
                    self._answer(401, b"")
                    return
                if self.path != "/v1/traces":
                    self._answer(404, b"")
                    return
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._record(request)
                self._answer(
                    200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                )

            def _answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self.host = "127.0.0.1"
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    _count_rejection = TlsOtlpTraceReceiver._count_rejection

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self) -> TlsOtlpHttpTraceReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
