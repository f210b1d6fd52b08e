"""Container health check: exit 0 when the server's gRPC health service says
SERVING, 1 otherwise (one line on stderr says why).

    python -m seedlock.serve.healthcheck [--address 127.0.0.1:8001] [--service NAME]

Used by the Dockerfile's HEALTHCHECK; needs only grpcio and grpcio-health-checking.
"""

from __future__ import annotations

import argparse
import os
import sys

from seedlock.serve.defaults import DEFAULT_PORT


def check(address: str, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    """(serving?, status name or error) for ``service`` ("" = the whole server)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seedlock.serve.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("SEEDLOCK_HEALTH_ADDRESS", f"127.0.0.1:{DEFAULT_PORT}"))
    parser.add_argument("--service", default="", help="a model name, or empty for the whole server")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    ok, status = check(args.address, args.service, args.timeout)
    if not ok:
        print(f"unhealthy: {args.address} {args.service or '(server)'}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
