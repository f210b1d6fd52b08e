"""Run an ASGI app (Starlette) with uvicorn on the gRPC server's event loop.

The same loop, not a thread of its own: the REST handlers await the model
schedulers, whose queues and futures belong to that loop, and a second loop
would need a thread hop per request. The socket is bound up front, so a taken
port fails ``start_server`` at once, and port 0's choice is known before
anything is printed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from seedlock.core.errors import UserError
from seedlock.serve.security import ServerTLS


def bind(host: str, port: int, flag: str) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port); UserError naming ``flag`` when it can't."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family, backlog=1024)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({flag}): {exc.strerror or exc}") from None


def ssl_context(tls: ServerTLS) -> ssl.SSLContext:
    """The gRPC server's certificate (and client CA, when mutual) as an SSLContext.
    ``load_cert_chain`` reads files only: the PEMs go through a private
    temporary folder that is gone when this returns."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="seedlock-tls-") as folder:
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_bytes(tls.cert_chain)
        key.touch(mode=0o600)
        key.write_bytes(tls.private_key)
        context.load_cert_chain(cert, key)
    if tls.client_ca is not None:
        context.load_verify_locations(cadata=tls.client_ca.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class HttpServer:
    """One uvicorn server on a bound socket, started and stopped on the running loop."""

    def __init__(self, app: Any, sock: socket.socket, tls: ServerTLS | None, grace: float = 5.0) -> None:
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", ws="none", server_header=False,
            timeout_graceful_shutdown=grace,
        )  # fmt: skip
        config.load()
        if tls is not None:
            config.ssl = ssl_context(tls)  # uvicorn takes file names only; the context is built from the gRPC server's PEMs
        self.server = uvicorn.Server(config)
        self.socket = sock
        self.port: int = sock.getsockname()[1]
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.socket]))
        # uvicorn offers no start event: its flag is set once the socket accepts (a few ms).
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise UserError(f"the HTTP server on port {self.port} stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self, grace: float | None) -> None:
        """Stop accepting, let in-flight requests finish (up to ``grace`` seconds), close."""
        if self._task is None:
            self.socket.close()
            return
        if grace is not None:
            self.server.config.timeout_graceful_shutdown = grace
        self.server.should_exit = True
        try:
            await self._task
        finally:
            self.socket.close()


def http_endpoints(host: str, http_port: int | None, metrics_port: int | None, servicer: Any, registry: Any,
                   max_body: int, tls: ServerTLS | None, auth: Any) -> tuple[HttpServer | None, HttpServer | None]:  # fmt: skip
    """Bind the REST and metrics ports (None: that one is off); nothing is served until :meth:`HttpServer.start`."""
    from seedlock.serve.metrics import metrics_app
    from seedlock.serve.rest import rest_app

    rest = metrics = None
    try:
        if http_port is not None:
            app = rest_app(servicer, max_body, auth, watcher=registry.trimmer)
            rest = HttpServer(app, bind(host, http_port, "--http-port"), tls)
        if metrics_port is not None:
            metrics = HttpServer(metrics_app(registry, auth), bind(host, metrics_port, "--metrics-port"), tls)
    except BaseException:
        if rest is not None:
            rest.socket.close()
        raise
    return rest, metrics
