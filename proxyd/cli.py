"""Command line: `proxyd [--config PATH]` runs the daemon; `check-config PATH` validates; `--version`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from proxyd import __version__
from proxyd.config import Config, ConfigStore, load_config
from proxyd.log import setup_logging

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
    parser.add_argument("--log-format", choices=("auto", "json", "console"), default="auto",
                        help="log format: JSON lines off a TTY by default")
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


def _bind_host(config: Config) -> str | None:
    return config.host or None  # "" = every interface, IPv4 and IPv6


async def serve(store: ConfigStore) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the config."""
    from aiohttp import web

    from proxyd.app import create_app

    log = structlog.get_logger("proxyd")
    config = store.current
    app = create_app(store)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=float(config.shutdown_grace_seconds))
    await runner.setup()
    site = web.TCPSite(runner, _bind_host(config), config.port, reuse_address=True)
    await site.start()
    log.info("listening", host=config.host or "*", port=config.port, version=__version__)
    if not config.api_keys and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("api-keys is empty and proxyd listens beyond loopback: anyone who can reach it can use it")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = loop.create_task(store.reload("SIGHUP"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await stop.wait()
        log.info("shutting down", grace_seconds=config.shutdown_grace_seconds)
    finally:
        await runner.cleanup()
        log.info("stopped")


def run_daemon(config_path: Path, log_format: str) -> int:
    try:
        store = ConfigStore.open(config_path)
    except Exception as exc:  # ConfigLoadError lists every problem
        setup_logging(fmt=log_format)  # type: ignore[arg-type]
        structlog.get_logger("proxyd").error("cannot start: config invalid", path=str(config_path), problems=str(exc))
        return 2
    setup_logging(debug=store.current.debug, fmt=log_format)  # type: ignore[arg-type]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    try:
        runner(serve(store))
    except OSError as exc:
        structlog.get_logger("proxyd").error("cannot listen", error=str(exc))
        return 2
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
