"""``seedlock serve``: serve a model repository until SIGTERM / Ctrl-C, then drain."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

log = logging.getLogger("seedlock.serve")


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    from seedlock.core.argtypes import port
    from seedlock.core.imaging import MAX_PIXELS, MAX_SIDE
    from seedlock.core.sessions import BACKENDS
    from seedlock.serve.defaults import DEFAULT_GRACE_S, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_QUEUE, DEFAULT_PORT

    parser.add_argument("--repository", required=True, help="model repository folder (Triton layout, from `seedlock export`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)")
    parser.add_argument("--port", type=port, default=DEFAULT_PORT,
                        help="port, 0 to 65535; 0 picks a free one (default: %(default)s, as Triton's gRPC port)")
    from seedlock.core.argtypes import MAX_PORT, int_range
    from seedlock.serve.defaults import DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT

    # Default None: Triton's port, or a free one when --port is 0 (so servers started for tests never collide).
    parser.add_argument("--http-port", type=int_range(-1, MAX_PORT), default=None,
                        help="KServe v2 REST (Triton's HTTP protocol, binary tensors included) on this port; 0 picks a "
                        f"free one, -1 turns it off (default: {DEFAULT_HTTP_PORT}, as Triton's; a free one with --port 0)")
    parser.add_argument("--metrics-port", type=int_range(-1, MAX_PORT), default=None,
                        help="Prometheus metrics at /metrics on this port, in Triton's names (nv_inference_*) and "
                        f"seedlock's; 0 picks a free one, -1 turns it off (default: {DEFAULT_METRICS_PORT}, as Triton's; "
                        "a free one with --port 0)")
    parser.add_argument("--models", type=_names, default=None, help="comma-separated model names to serve (default: all)")
    parser.add_argument("--model-control-mode", choices=("none", "poll", "explicit"), default="none",
                        help="Triton's model control: 'none' serves what loads at start-up; 'poll' rescans the repository "
                        "every --repository-poll-secs, loading new versions and dropping removed ones; 'explicit' loads "
                        "only --load-model models and answers RepositoryModelLoad/Unload (default: %(default)s)")
    parser.add_argument("--repository-poll-secs", type=float, default=15.0,
                        help="seconds between repository scans in poll mode (default: %(default)s)")
    parser.add_argument("--load-model", action="append", default=[], metavar="NAME",
                        help="explicit mode: a model to load at start-up (repeatable; '*' loads every model)")
    parser.add_argument("--providers", default=None,
                        help="ONNX Runtime execution providers in priority order, e.g. trt,cuda,cpu "
                        "(default: the best this build has: TensorRT > CUDA > CPU)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the graphs: 'auto' uses a model version's TensorRT engine (from `seedlock export trt`) "
                        "when this host can run it (same TensorRT, CUDA major and GPU as it was built with), else the runtime "
                        "the version is pinned to: ONNX Runtime for fp32 exports, OpenVINO for bf16/int8 ones (`seedlock export "
                        "--precision`); 'tensorrt' also warns about models without an engine; 'onnxruntime' ignores engines "
                        "and refuses bf16/int8 versions; 'openvino' runs every graph through OpenVINO on the CPU, fp32 "
                        "versions in fp32 (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads each model version may keep busy (default: the cores available): it runs "
                        "threads / its intra-op threads instances. A session's own thread count is part of the model "
                        "(its manifest), so this changes throughput, never an answer")
    parser.add_argument("--instances", type=int, default=None,
                        help="model calls per model version that run at once, over config.pbtxt's instance_group count "
                        "(default: that count, else threads / the model's intra-op threads)")
    parser.add_argument("--inter-op-threads", type=int, default=1, help="inter-op threads per session (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads decoding and encoding requests (images, music) off the event loop (default: max(2, cores))")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                        help="requests waiting per model version; more are refused at once with RESOURCE_EXHAUSTED "
                        "(config.pbtxt's dynamic_batching.default_queue_policy.max_queue_size wins; default: %(default)s)")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="largest request or response in bytes (default: %(default)s)")
    parser.add_argument("--max-image-pixels", type=int, default=MAX_PIXELS,
                        help="largest image a request may send, in pixels (width x height, read from the header "
                        "before decoding; default: %(default)s)")
    parser.add_argument("--max-image-side", type=int, default=MAX_SIDE,
                        help="longest image side a request may send, in pixels (default: %(default)s)")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_S,
                        help="seconds queued and in-flight requests get to finish on SIGTERM (default: %(default)s)")
    parser.add_argument("--spin", action="store_true", help="let ONNX Runtime threads spin between ops (lower latency, more CPU)")
    parser.add_argument("--trt-cache", default=None, help="TensorRT engine cache folder (default: ~/.cache/seedlock/tensorrt)")
    security = parser.add_argument_group(
        "TLS and authentication",
        "Without these the server speaks plaintext gRPC and answers anyone who reaches the port. Health checks "
        "(grpc.health.v1 Check/Watch) and KServe ServerLive/ServerReady stay open without a token so orchestrators "
        "can probe; with --tls-client-ca they too need a client certificate.",
    )
    security.add_argument("--tls-cert", metavar="FILE", default=None,
                          help="serve over TLS with this PEM certificate (chain: the server's first, then intermediates)")
    security.add_argument("--tls-key", metavar="FILE", default=None, help="the certificate's PEM private key (unencrypted)")
    security.add_argument("--tls-client-ca", metavar="FILE", default=None,
                          help="mutual TLS: require every client to present a certificate signed by a CA in this PEM file")
    security.add_argument("--auth-token-file", metavar="FILE", default=None,
                          help="require 'authorization: Bearer <token>' metadata on every call but health, the token being "
                          "one of this file's lines (one per line; blank lines and # comments ignored); others get "
                          "UNAUTHENTICATED")
    ops = parser.add_argument_group("configuration, logs and tracing")
    ops.add_argument("--config", metavar="FILE", default=None,
                     help="read these flags from a YAML file: each flag's long name without the dashes is a key "
                     "(e.g. 'max-queue: 64'; switches take true/false); flags on the command line override it")
    ops.add_argument("--log-format", choices=("text", "json"), default="text",
                     help="'json': one JSON object per line on stderr (ts, level, logger, message and extra fields) "
                     "(default: %(default)s)")
    ops.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                     help="one INFO line per call on logger seedlock.access: method, model, status, duration_ms, "
                     "request_id (the request's id or x-request-id metadata), peer (default: on)")
    ops.add_argument("--trace-endpoint", metavar="URL", default=None,
                     help="export an OpenTelemetry span per call over OTLP/gRPC to this collector, e.g. "
                     "http://otel-collector:4317 (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or "
                     "$OTEL_EXPORTER_OTLP_ENDPOINT; none: no tracing); needs pip install 'seedlock[tracing]'")


def _side_port(value: int | None, grpc_port: int, default: int) -> int | None:
    """--http-port/--metrics-port: None (off) for -1; unset: the default, or 0 (a free one) with --port 0."""
    if value is None:
        return 0 if grpc_port == 0 else default
    return None if value < 0 else value


def _serve(args: argparse.Namespace) -> int:
    from seedlock.serve.memory import configure_malloc

    configure_malloc()  # before any thread starts (each keeps its malloc heap)
    from seedlock.serve import logs, tracing

    logs.configure(args.log_format, access_log=args.access_log)
    from seedlock.core.errors import UserError
    from seedlock.core.imaging import ImageLimits
    from seedlock.serve.defaults import DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT
    from seedlock.serve.security import load_server_tls, load_tokens
    from seedlock.serve.startup import exit_while_starting

    # Credentials are checked before the (slow) imports and model loading, so a wrong file fails at once.
    if args.tls_client_ca and not args.tls_cert:
        raise UserError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
    tls = load_server_tls(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert or args.tls_key else None
    tokens = load_tokens(args.auth_token_file) if args.auth_token_file else ()
    tracing.configure(tracing.endpoint_from(args.trace_endpoint))  # a missing extra fails here, before loading

    from seedlock.serve.server import start_server

    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    # A model instance that finishes its call must take the GIL back from the
    # event loop to hand over its results; with Python's default 5 ms switch
    # interval a busy loop idles the model for up to 5 ms per call.
    sys.setswitchinterval(0.001)
    # Until the server listens, SIGTERM exits 0 at once: nothing is in flight,
    # and loading the rest (or a read that hangs) must not delay the stop.
    exit_while_starting()
    running = start_server(
        args.repository,
        host=args.host,
        port=args.port,
        http_port=_side_port(args.http_port, args.port, DEFAULT_HTTP_PORT),
        metrics_port=_side_port(args.metrics_port, args.port, DEFAULT_METRICS_PORT),
        models=args.models,
        providers=args.providers,
        threads=args.threads,
        inter_op_threads=args.inter_op_threads,
        max_message_bytes=args.max_message_bytes,
        max_queue=args.max_queue,
        workers=args.workers,
        instances=args.instances,
        allow_spinning=args.spin,
        cache_dir=args.trt_cache,
        backend=args.backend,
        image_limits=ImageLimits(args.max_image_pixels, args.max_image_side),
        tls=tls,
        auth_tokens=tokens,
        model_control_mode=args.model_control_mode,
        repository_poll_secs=args.repository_poll_secs,
        load_models=args.load_model,
    )
    # Serving: from now on a signal drains in-flight requests first.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # One line on stdout for scripts and tests that started us with --port 0.
    print(f"seedlock serve: listening on {running.address}", flush=True)
    if running.http_port is not None:
        print(f"seedlock serve: http on {running.address_at(running.http_port)}", flush=True)
    if running.metrics_port is not None:
        print(f"seedlock serve: metrics on {running.address_at(running.metrics_port)}", flush=True)
    log.info("transport: %s; authentication: %s",
             ("TLS, client certificates required" if tls.mutual else "TLS") if tls else "plaintext (no TLS)",
             f"bearer token ({len(tokens)} accepted)" if tokens else "none")
    while not stop.wait(0.5):  # short waits keep the main thread responsive to signals
        pass
    name = signal.Signals(received[0]).name if received else "signal"
    log.info("%s received", name)
    running.stop(grace=args.grace)
    tracing.shutdown()  # flushes the spans still batched
    log.info("stopped cleanly")
    sys.stdout.flush()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model repository over gRPC, REST and Prometheus metrics",
        description="Serve every model in a repository: on the gRPC port, Triton's GRPCInferenceService "
        "(tritonclient and perf_analyzer compatible), the seedlock.v1 task services, grpc.health.v1 and "
        "reflection; KServe v2 REST on --http-port and Prometheus metrics on --metrics-port. Models whose "
        "files do not match their manifest digests are refused; the rest still serve. SIGTERM drains "
        "in-flight requests and exits 0.",
    )
    add_server_arguments(parser)
    parser.set_defaults(func=_serve)
