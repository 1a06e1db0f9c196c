"""``voiceguard serve``: the reference server under uvicorn, and :func:`serving` for tests.

The command reads its options (:mod:`voiceguard.server.options`) from the command line and the
environment, refuses to listen on a public address without a Twilio auth token (unless told
``--allow-unsigned``), binds the socket itself (so ``--port 0`` prints the port it got), and runs
:func:`~voiceguard.server.create_app` in one process or, with ``--workers N``, in *N* (each builds
its own app with :func:`~voiceguard.server.app_from_env`). The workers share a directory
(:mod:`voiceguard.server.workers`): every worker's ``/metrics`` shows the whole server's metrics,
and ``--max-calls`` and ``/healthz`` are the whole server's.

Needs the ``server`` extra: ``pip install 'voiceguard[server]'``; the module imports none of it,
so ``voiceguard --help`` works without it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import anyio

from voiceguard._redact import SecretFilter
from voiceguard.errors import ConfigError
from voiceguard.observe.trace import trace_dir_problem
from voiceguard.protocol import PhoneDialect
from voiceguard.server.app import app_from_env, create_app
from voiceguard.server.config import (
    INCOMING_CALL_PATH,
    RETIRED_BETA,
    ServerConfig,
    config_from_values,
)
from voiceguard.server.drain import drain_on_sigterm
from voiceguard.server.options import (
    DEFAULT_HOST,
    OPTIONS,
    ServerOption,
    export_options,
    resolve_options,
)

if TYPE_CHECKING:
    import starlette.applications

__all__ = ("CallFormatter", "add_serve_command", "is_loopback", "serving")

logger = logging.getLogger("voiceguard.server")

#: Seconds uvicorn gives the connections left to close when it stops (after the drain, or at
#: once on Ctrl+C or a second SIGTERM).
_SHUTDOWN_GRACE: Final = 5
#: uvicorn's HTTP protocol with the request-head timeout and the cap on waiting connections.
EDGE_PROTOCOL: Final = "voiceguard.server.edge:EdgeHTTPProtocol"


def draining(app: starlette.applications.Starlette) -> starlette.applications.Starlette:
    """*app* (one :func:`~voiceguard.server.create_app` built), with SIGTERM made a drain.

    For an ASGI server's app factory: uvicorn calls it in its event loop with its own signal
    handlers installed, and the first SIGTERM then drains the app
    (:mod:`voiceguard.server.drain`) before uvicorn stops.
    """
    server = app.state.voiceguard
    if not drain_on_sigterm(server.drain, lambda: list(server.handlers.values())):
        logger.warning("SIGTERM stops the server at once: no drain outside the main thread")
    return app


def draining_app_from_env() -> starlette.applications.Starlette:
    """:func:`~voiceguard.server.app_from_env` with SIGTERM made a drain (:func:`draining`):
    the app factory of each worker of ``voiceguard serve --workers N``."""
    return _settled(draining(app_from_env()))


def _settled(app: starlette.applications.Starlette) -> starlette.applications.Starlette:
    """*app*, with what the process holds before its first call out of the garbage collector's
    way: collected once, then frozen (:func:`gc.freeze`), so a full collection during the calls
    walks the calls' objects only. The modules and the app are about 45,000 objects, whose full
    collection alone takes about 22 ms on a 2-core machine: every call's audio waits that long."""
    gc.collect()
    gc.freeze()
    return app


def _stop(sig: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fast_stack(loop: str) -> str:
    """The event loop and HTTP parser uvicorn picks (the faster ones when installed)."""
    if loop == "auto":
        loop = (
            "uvloop" if importlib.util.find_spec("uvloop") else "asyncio (install uvloop: faster)"
        )
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}, HTTP parser {http}"


@contextlib.asynccontextmanager
async def serving(app: Any, *, host: str = DEFAULT_HOST) -> AsyncIterator[int]:
    """Serve an ASGI *app* with uvicorn in the running event loop, on a free port of *host*.

    For tests and demos: ``async with serving(create_app(config)) as port:`` gives a real server
    on ``http://127.0.0.1:PORT`` (WebSockets included) for the block, and stops it after.

    Args:
        app: Any ASGI application (what :func:`create_app` returns, or your app around it).
        host: The address to listen on; loopback by default.

    Yields:
        The TCP port it listens on.
    """
    import uvicorn  # noqa: PLC0415 - the server extra

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(512)
        config = uvicorn.Config(
            app,
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            http=EDGE_PROTOCOL,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        _set_edge_limits(config, _app_config(app))
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield int(sock.getsockname()[1])
            finally:
                server.should_exit = True
    finally:
        sock.close()


def _app_config(app: Any) -> ServerConfig | None:
    """The :class:`ServerConfig` of an app :func:`create_app` built, if *app* is one."""
    server = getattr(getattr(app, "state", None), "voiceguard", None)
    config = getattr(server, "config", None)
    return config if isinstance(config, ServerConfig) else None


def _set_edge_limits(uconfig: Any, config: ServerConfig | None) -> None:
    """Give uvicorn's config the limits the edge protocol enforces."""
    from voiceguard.server.edge import CONFIG_ATTRIBUTE, EdgeLimits  # noqa: PLC0415 - uvicorn

    defaults = config or ServerConfig()
    limits = EdgeLimits(
        request_timeout=defaults.request_timeout, max_waiting=defaults.max_waiting_connections
    )
    setattr(uconfig, CONFIG_ATTRIBUTE, limits)


class CallFormatter(logging.Formatter):
    """Adds the call SID to a record that has one (the handler's records carry it as extra).

    The formatter of the ``voiceguard`` loggers under ``voiceguard serve``.
    """

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        sid = getattr(record, "call_sid", None)
        if sid and str(sid) not in text:
            text += f" [call {sid}]"
        return text


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - the server extra

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["voiceguard"] = {
        "()": f"{CallFormatter.__module__}.{CallFormatter.__qualname__}",
        "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
    }
    config["handlers"]["voiceguard"] = {
        "formatter": "voiceguard",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["voiceguard"] = {
        "handlers": ["voiceguard"],
        "level": level.upper(),
        "propagate": False,
    }
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"].setdefault(name, {})["level"] = level.upper()
    # Every record, whoever logs it (uvicorn's request headers at debug, websockets' frames),
    # has the configured secrets and credential headers blanked on its way out.
    config.setdefault("filters", {})["secrets"] = {"()": f"{SecretFilter.__module__}.SecretFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("secrets")
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config


def _argument_type(option: ServerOption) -> Callable[[str], object]:
    def parse(text: str) -> object:
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: {exc}") from None

    parse.__name__ = option.name
    return parse


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``voiceguard serve`` to the command line's subcommands.

    Args:
        commands: What ``ArgumentParser.add_subparsers`` returned.
    """
    serve = commands.add_parser(
        "serve",
        help="run the reference server: Twilio Media Streams <-> OpenAI Realtime, guarded",
        description=(
            "Run the reference server (uvicorn): POST /incoming-call answers TwiML (TeXML or "
            "Plivo XML with --phone) that connects the call to wss://<public host>/media-stream; "
            "each media stream is bridged to the "
            "Realtime API with every guard on; GET /healthz and GET /metrics (Prometheus) for "
            "operations. The model provider's key (OPENAI_API_KEY, AZURE_OPENAI_API_KEY or "
            "XAI_API_KEY, by --model-provider) is sent as the provider takes it; with "
            "TWILIO_AUTH_TOKEN set, requests without a valid X-Twilio-Signature are refused. "
            "Every option can also be set by the environment variable named in its help; the "
            "option wins. Needs: pip install 'voiceguard[server]'."
        ),
    )
    for option in OPTIONS:
        default = option.default if option.default not in (None, "") else "none"
        text = f"{option.help} (env {option.env}; default: {default})"
        if option.is_flag:
            serve.add_argument(
                option.flag,
                dest=option.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=text,
            )
        else:
            serve.add_argument(
                option.flag,
                dest=option.name,
                type=_argument_type(option),
                default=None,
                metavar=option.metavar,
                help=text.replace("%", "%%"),
            )
    serve.set_defaults(handler=_serve_command)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _display_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address (``localhost``, 127.0.0.0/8, ``::1``).

    ``voiceguard serve`` listens elsewhere without a Twilio auth token only when told
    ``--allow-unsigned``.

    Args:
        host: An address or a host name, an IPv6 address perhaps in brackets.

    Returns:
        True for a loopback address; False for any other address and any other host name.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def _serve_command(args: argparse.Namespace) -> int:
    try:
        import prometheus_client  # noqa: F401, PLC0415 - only this command needs them
        import starlette  # noqa: F401, PLC0415
        import uvicorn  # noqa: PLC0415
        import websockets  # noqa: F401, PLC0415
    except ImportError as exc:
        print(
            f"voiceguard serve needs the server extra ({exc.name} is missing): "
            "pip install 'voiceguard[server]'",
            file=sys.stderr,
        )
        return 2
    try:
        values = resolve_options(args, os.environ)
        config = config_from_values(values, os.environ)
    except ConfigError as exc:
        print(f"voiceguard serve: {exc}", file=sys.stderr)
        return 2
    if not config.api_key and config.model_token is None:
        provider = config.provider
        other = " or give --model-token" if provider.name == "azure" else ""
        print(
            f"voiceguard serve: {provider.key_variable} is not set: set it to your "
            f"{provider.title} API key{other} (any non-empty value for a local simulator)",
            file=sys.stderr,
        )
        return 2
    if config.trace_dir is not None and (problem := trace_dir_problem(config.trace_dir)):
        print(f"voiceguard serve: --trace-dir {config.trace_dir}: {problem}", file=sys.stderr)
        return 2
    host = str(values["host"])
    if (
        config.twilio_auth_token
        and not is_loopback(host)
        and config.public_url is None
        and config.allowed_hosts is None
    ):
        print(
            f"voiceguard serve: refusing to listen on {host} with signatures checked but "
            "neither --public-url nor --allowed-hosts: the signed URL would be built from the "
            "request's Host header, so a request signed for another app on the same Twilio "
            "account would pass; set --public-url https://<the host Twilio calls> (or "
            "--allowed-hosts)",
            file=sys.stderr,
        )
        return 2
    if not config.twilio_auth_token and not values["allow_unsigned"] and not is_loopback(host):
        print(
            f"voiceguard serve: refusing to listen on {host} without TWILIO_AUTH_TOKEN: anyone "
            "who reaches the server could open model sessions on your API key; set "
            "TWILIO_AUTH_TOKEN (requests are then checked for X-Twilio-Signature), listen on "
            "127.0.0.1, or pass --allow-unsigned (development only)",
            file=sys.stderr,
        )
        return 2
    workers = int(values["workers"])  # type: ignore[call-overload]
    loop = str(values["loop"])
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        print(
            "voiceguard serve: --loop uvloop: uvloop is not installed "
            "(pip install 'voiceguard[server]', or --loop auto)",
            file=sys.stderr,
        )
        return 2
    level = str(values["log_level"])
    try:
        sock = _bind(host, int(values["port"]))  # type: ignore[call-overload]
    except OSError as exc:
        print(f"voiceguard serve: cannot listen on {host}:{values['port']}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    from voiceguard.server.edge import raise_descriptor_limit  # noqa: PLC0415 - imports uvicorn

    raise_descriptor_limit()
    common: dict[str, Any] = {
        "loop": loop,
        "ws": "websockets-sansio",
        # Base64 audio does not compress: permessage-deflate only costs CPU (a tenth of it).
        "ws_per_message_deflate": False,
        "http": EDGE_PROTOCOL,
        "ws_max_size": config.max_message_bytes,
        "log_config": _log_config(level),
        "log_level": level,
        "lifespan": "off",
        "server_header": False,
        "timeout_graceful_shutdown": _SHUTDOWN_GRACE,
    }
    if workers > 1:
        return _serve_workers(values, config, sock, common)
    _banner(config, host, port, workers, loop)
    # Outside uvicorn's own handlers (before it starts, and when it raises the SIGTERM it
    # stopped for once more after a drain) a SIGTERM stops like Ctrl+C: "stopped", status 0.
    signal.signal(signal.SIGTERM, _stop)
    try:
        uconfig = uvicorn.Config(
            lambda: _settled(draining(create_app(config))), factory=True, **common
        )
        _set_edge_limits(uconfig, config)
        uvicorn.Server(uconfig).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("voiceguard serve: stopped", flush=True)
    return 0


def _serve_workers(
    values: dict[str, object], config: ServerConfig, sock: socket.socket, common: dict[str, Any]
) -> int:
    """Run the worker processes, sharing one directory (the metrics, the call limit)."""
    import uvicorn  # noqa: PLC0415 - the server extra

    from voiceguard.server.workers import WorkerSupervisor, shared_directory  # noqa: PLC0415

    workers = int(values["workers"])  # type: ignore[call-overload]
    host, port, loop = str(values["host"]), sock.getsockname()[1], str(values["loop"])
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        try:
            directory, kept = stack.enter_context(shared_directory(os.environ))
        except OSError as exc:
            print(
                f"voiceguard serve: cannot prepare the workers' directory: {exc}", file=sys.stderr
            )
            return 1
        shared = f"{directory} (metrics, calls; {'kept' if kept else 'removed'} at the end)"
        _banner(config, host, port, workers, loop, shared=shared)
        signal.signal(signal.SIGTERM, _stop)
        export_options(values, os.environ)
        uconfig = uvicorn.Config(
            f"{draining_app_from_env.__module__}:{draining_app_from_env.__name__}",
            factory=True,
            workers=workers,
            **common,
        )
        _set_edge_limits(uconfig, config)
        supervisor = WorkerSupervisor(uconfig, sockets=[sock], directory=directory)
        try:
            supervisor.run()
        except KeyboardInterrupt:
            pass
        finally:
            supervisor.forget_all()
    print("voiceguard serve: stopped", flush=True)
    return 0


def _webhook(phone: PhoneDialect) -> str:
    """The webhook the banner names, as the provider's console calls it."""
    return "answer URL: GET" if phone.name == "vonage" else "voice webhook: POST"


def _banner(
    config: ServerConfig, host: str, port: int, workers: int, loop: str, *, shared: str = ""
) -> None:
    shown_host = f"[{host}]" if ":" in host else host
    where = config.public_url or "https://<Host>"
    phone = config.phone_dialect
    if not phone.is_twilio:
        checks = f"none ({phone.title} media streams are not signed; see the docs' Phone providers)"
    elif config.twilio_auth_token:
        checks = "checked"
    else:
        checks = "NOT checked (no TWILIO_AUTH_TOKEN)"
    stream = config.stream_url() if config.public_url else "wss://<Host>/media-stream"
    lines = [
        f"voiceguard serve: listening on http://{shown_host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''}, up to {config.max_calls} calls)",
        f"  {phone.title} {_webhook(phone)} {where}{INCOMING_CALL_PATH}",
        f"  media stream: {stream}",
        f"  Realtime API: {_display_url(config.model_url)} ({config.provider.title})",
        f"  signatures: {checks}",
        f"  event loop: {_fast_stack(loop)}",
    ]
    if shared:
        lines.append(f"  workers share: {shared}")
    if config.realtime_beta:
        lines.append(f"  --realtime-beta is deprecated and ignored: {RETIRED_BETA}")
    print("\n".join([*lines, "  Press Ctrl+C to stop."]), flush=True)
