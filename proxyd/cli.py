"""Command line: `proxyd [--config PATH]` runs the daemon; `check-config PATH` validates; `--version`.

The daemon binds its sockets and loads its TLS certificate before the event loop starts, so an unusable address
or certificate is one clear log line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import ipaddress
import os
import signal
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from proxyd import __version__
from proxyd.config import ConfigStore, TLSConfig, load_config
from proxyd.log import setup_logging
from proxyd.systemd import Notifier

DEFAULT_CONFIG = "config.yaml"


def _normalise_go_flags(argv: Sequence[str]) -> list[str]:
    """Accept the reference's single-dash flags (`-config x`) alongside the usual `--config x`."""
    out = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            out.append("-" + arg)
        else:
            out.append(arg)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proxyd", description="LLM API gateway daemon.")
    parser.add_argument("--version", action="version", version=f"proxyd {__version__}")
    parser.add_argument("--config", default=None, help="config file (default: ./config.yaml)")
    parser.add_argument("--log-format", choices=("auto", "json", "console", "journal"), default="auto",
                        help="log format (auto: journal under journald, console on a TTY, JSON lines otherwise)")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the daemon in the foreground (the default)")
    run.add_argument("--config", dest="run_config", default=None)
    check = sub.add_parser("check-config", help="validate a config file and print every problem")
    check.add_argument("path", nargs="?", default=None)
    return parser


def check_config(path: Path) -> int:
    """Print every problem with its key path; exit 0 when the file is usable, 1 otherwise."""
    result = load_config(path)
    for problem in result.problems:
        sys.stdout.write(f"{path}: {problem.severity}: {problem}\n")
    if result.ok:
        warnings = len(result.problems)
        sys.stdout.write(f"{path}: ok" + (f" ({warnings} warning(s))" if warnings else "") + "\n")
        return 0
    return 1


class StartupError(Exception):
    """A problem found before serving (unreadable TLS files, unusable address): logged plainly, exit status 2."""


# --------------------------------------------------------------------------------------------- listening

_V6_UNAVAILABLE = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})


def _bind(family: int, address: tuple[Any, ...], *, v6only: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) sockets for ``host:port``.

    ``""`` is every interface of both families: ``::`` (IPv6 only) and ``0.0.0.0``; IPv6 is skipped with a
    warning where the kernel has none. Any other host is resolved and every address it names is bound, so
    ``localhost`` means 127.0.0.1 and ::1 and nothing else. A bare ``::`` is dual stack, as in the reference.
    Port 0 binds one ephemeral port shared by all sockets.
    """
    if host in ("", "*"):
        targets: list[tuple[int, tuple[Any, ...]]] = [(socket.AF_INET6, ("::", port, 0, 0)),
                                                      (socket.AF_INET, ("0.0.0.0", port))]
    else:
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise StartupError(f"host {host!r}: cannot resolve: {exc.strerror}") from None
        targets = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in targets:
                targets.append((family, sockaddr))
    both = {family for family, _ in targets} == {socket.AF_INET, socket.AF_INET6}
    sockets: list[socket.socket] = []
    try:
        for family, address in targets:
            if port == 0 and sockets:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sockets.append(_bind(family, address, v6only=both))
            except OSError as exc:
                if family == socket.AF_INET6 and host == "" and exc.errno in _V6_UNAVAILABLE:
                    structlog.get_logger("proxyd").warning("IPv6 unavailable; listening on IPv4 only",
                                                           error=exc.strerror)
                    continue
                raise StartupError(f"cannot listen on {_show_address(address)}: {exc.strerror or exc}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise StartupError(f"host {host!r}: no address to listen on")
    return sockets


def _show_address(address: tuple[Any, ...]) -> str:
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def _all_loopback(sockets: Sequence[socket.socket]) -> bool:
    return all(ipaddress.ip_address(sock.getsockname()[0]).is_loopback for sock in sockets)


# --------------------------------------------------------------------------------------------------- TLS


def _tls_paths(tls: TLSConfig) -> tuple[Path, Path]:
    if not tls.cert.strip() or not tls.key.strip():
        missing = " and ".join(name for name, value in (("tls.cert", tls.cert), ("tls.key", tls.key))
                               if not value.strip())
        raise StartupError(f"tls.enable is true but {missing} is empty")
    paths = []
    for name, value in (("tls.cert", tls.cert), ("tls.key", tls.key)):
        path = Path(value.strip()).expanduser()
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise StartupError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
        paths.append(path)
    return paths[0], paths[1]


def _load_chain(context: ssl.SSLContext, tls: TLSConfig) -> None:
    cert, key = _tls_paths(tls)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise StartupError(f"tls: cannot use certificate {cert} with key {key}: {exc.reason or exc}") from None


def tls_context(tls: TLSConfig) -> ssl.SSLContext | None:
    """The server SSLContext for ``tls`` (None when disabled); raises StartupError with a readable reason."""
    if not tls.enable:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, tls)
    return context


def reload_certificate(context: ssl.SSLContext, tls: TLSConfig) -> None:
    """Load the (possibly renewed) certificate into the live context; new handshakes use it at once.

    The files are tried on a scratch context first, so a bad renewal leaves the serving certificate untouched.
    """
    _load_chain(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), tls)
    _load_chain(context, tls)


# ------------------------------------------------------------------------------------------------- serve


async def serve(store: ConfigStore, sockets: Sequence[socket.socket] | None = None,
                ssl_context: ssl.SSLContext | None = None, notifier: Notifier | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain for up to ``shutdown-grace-seconds``; SIGHUP reloads.

    systemd is told READY=1 once every socket listens, RELOADING=1 … READY=1 around a SIGHUP reload and
    STOPPING=1 when the drain begins; the watchdog is fed from this event loop.
    """
    from aiohttp import web

    from proxyd.app import create_app

    log = structlog.get_logger("proxyd")
    notifier = notifier or Notifier()
    config = store.current
    if sockets is None:
        sockets = listen_sockets(config.host, config.port)
    scheme = "https" if ssl_context is not None else "http"
    addresses = [_show_address(sock.getsockname()) for sock in sockets]
    app = create_app(store)
    grace = float(config.shutdown_grace_seconds)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, ssl_context=ssl_context, backlog=1024).start()
        log.info("listening", host=config.host or "*", port=sockets[0].getsockname()[1], addresses=addresses,
                 scheme=scheme, version=__version__)
        if not config.api_keys and not _all_loopback(sockets):
            log.warning("api-keys is empty and proxyd listens beyond loopback: anyone who can reach it can use it")
        serving = f"serving {scheme} on {', '.join(addresses)}"
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_stop(signame: str) -> None:
            if stop.is_set():
                log.info("already stopping", signal=signame)
                return
            log.info("shutting down", signal=signame, grace_seconds=grace)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig.name)
        reloads: set[asyncio.Task[None]] = set()
        reload_lock = asyncio.Lock()

        async def reload() -> None:
            async with reload_lock:
                notifier.reloading("reloading configuration")
                try:
                    await store.reload("SIGHUP")
                    if ssl_context is not None:
                        _reload_tls(ssl_context, store.current.tls, log)
                    elif store.current.tls.enable:
                        log.warning("tls.enable turned on: restart proxyd to serve HTTPS")
                finally:
                    notifier.ready(serving)

        def on_hup() -> None:
            task = loop.create_task(reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        # Everything built so far (modules, routes, the first config) lives as long as the process: moved out of
        # the collector's generations, a full collection (one per reload of a big config) walks only what came
        # later instead of pausing the loop for 100+ ms.
        gc.collect()
        gc.freeze()
        store.start_parse_worker()  # forked now, while nothing is in flight: reloads then fork nothing
        # Signals are handled from here on: only now may systemd send them.
        notifier.ready(serving)
        interval = notifier.start_watchdog()
        if interval is not None:
            log.info("systemd watchdog enabled", ping_every_seconds=round(interval, 3))
        await stop.wait()
        notifier.stopping(f"stopping: finishing in-flight requests (up to {grace:g} s)")
    finally:
        store.stop_parse_worker()
        await runner.cleanup()
        await notifier.close()
        log.info("stopped")


def _reload_tls(context: ssl.SSLContext, tls: TLSConfig, log: Any) -> None:
    if not tls.enable:
        log.warning("tls.enable turned off: restart proxyd to serve plain HTTP; keeping the current certificate")
        return
    try:
        reload_certificate(context, tls)
    except StartupError as exc:
        log.error("TLS certificate reload failed; keeping the current certificate", error=str(exc))
        return
    log.info("TLS certificate reloaded", cert=tls.cert)


def run_daemon(config_path: Path, log_format: str) -> int:
    try:
        store = ConfigStore.open(config_path)
    except Exception as exc:  # ConfigLoadError lists every problem
        setup_logging(fmt=log_format)  # type: ignore[arg-type]
        structlog.get_logger("proxyd").error("cannot start: config invalid", path=str(config_path), problems=str(exc))
        return 2
    setup_logging(debug=store.current.debug, fmt=log_format)  # type: ignore[arg-type]
    log = structlog.get_logger("proxyd")
    config = store.current
    try:
        ssl_context = tls_context(config.tls)
        sockets = listen_sockets(config.host, config.port)
    except StartupError as exc:
        log.error("cannot start", error=str(exc))
        return 2
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    try:
        runner(serve(store, sockets, ssl_context))
    except OSError as exc:
        log.error("cannot listen", error=str(exc))
        return 2
    finally:
        for sock in sockets:
            sock.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_normalise_go_flags(sys.argv[1:] if argv is None else argv))
    if args.command == "check-config":
        target = args.path or args.config or DEFAULT_CONFIG
        return check_config(Path(target))
    config = getattr(args, "run_config", None) or args.config or os.environ.get("PROXYD_CONFIG") or DEFAULT_CONFIG
    return run_daemon(Path(config), args.log_format)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
