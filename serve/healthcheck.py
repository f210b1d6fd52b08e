"""Container health check: exit 0 when the server's gRPC health service says
SERVING, 1 otherwise (one line on stderr says why).

    python -m seedlock.serve.healthcheck [--address 127.0.0.1:8001] [--service NAME]
        [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]

Every flag has an environment default, so a Dockerfile HEALTHCHECK (which
cannot see `docker run` arguments) follows the container's settings:
SEEDLOCK_HEALTH_ADDRESS (default 127.0.0.1:8001), SEEDLOCK_TLS_CA,
SEEDLOCK_TLS_CERT, SEEDLOCK_TLS_KEY, SEEDLOCK_TLS_SERVER_NAME (the same TLS
variables ``seedlock client`` reads). Health needs no token, but a server with
--tls-client-ca wants a client certificate from every caller, this one too.

Used by the Dockerfile's HEALTHCHECK; needs only grpcio and grpcio-health-checking.
"""

from __future__ import annotations

import argparse
import os
import sys

from seedlock.serve.defaults import DEFAULT_PORT

DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


def default_address() -> str:
    """``$SEEDLOCK_HEALTH_ADDRESS`` or 127.0.0.1:8001."""
    return os.environ.get("SEEDLOCK_HEALTH_ADDRESS") or DEFAULT_ADDRESS


def check(
    address: str,
    service: str = "",
    timeout: float = 3.0,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_server_name: str | None = None,
) -> tuple[bool, str]:
    """(serving?, status name or error) for ``service`` ("" = the whole server).
    TLS when any ``tls_*`` is given (``tls_ca`` None: the system's roots)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from seedlock.core.credentials import load_tls_files
    from seedlock.core.errors import UserError

    if any((tls_ca, tls_cert, tls_key, tls_server_name)):
        try:
            files = load_tls_files(tls_cert, tls_key, tls_ca)
        except UserError as exc:
            return False, str(exc)
        credentials = grpc.ssl_channel_credentials(files.ca, files.private_key, files.cert_chain)
        options = [("grpc.ssl_target_name_override", tls_server_name)] if tls_server_name else []
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, name


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m seedlock.serve.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=default_address(),
                        help="host:port of the server (default: $SEEDLOCK_HEALTH_ADDRESS or %s)" % DEFAULT_ADDRESS)
    parser.add_argument("--service", default="", help="a model name, or empty for the whole server")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tls-ca", default=env("SEEDLOCK_TLS_CA") or None,
                        help="connect over TLS, verifying the server with this PEM CA file (default: $SEEDLOCK_TLS_CA)")
    parser.add_argument("--tls-cert", default=env("SEEDLOCK_TLS_CERT") or None,
                        help="client certificate for a server with --tls-client-ca (default: $SEEDLOCK_TLS_CERT)")
    parser.add_argument("--tls-key", default=env("SEEDLOCK_TLS_KEY") or None, help="its private key (default: $SEEDLOCK_TLS_KEY)")
    parser.add_argument("--tls-server-name", default=env("SEEDLOCK_TLS_SERVER_NAME") or None,
                        help="the name the server's certificate is for, when not the address's host "
                        "(default: $SEEDLOCK_TLS_SERVER_NAME)")
    args = parser.parse_args(argv)
    ok, status = check(args.address, args.service, args.timeout, args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    if not ok:
        print(f"unhealthy: {args.address} {args.service or '(server)'}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
