"""``opengroup serve`` (and what the legacy command line serves with) and
``opengroup url``."""

from __future__ import annotations

import logging
import logging.config
import os
import ssl
from typing import Any

import click

from opengroup.cli.common import common_options, open_server, print_join_urls, resolve_settings
from opengroup.config import ConfigError, Settings
from opengroup.logs import log_config
from opengroup.metrics import multiprocess_directory
from opengroup.startup import prepare
from opengroup.urls import HTTPS_NOTE

log = logging.getLogger(__name__)


@click.command()
@common_options
@click.option("--host", default=None, help="Address to listen on (default 0.0.0.0).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8080).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--public-url", default=None, help="Base URL clients reach us at, for join URLs.")
@click.option("--log-level", default=None, help="debug, info, warning, error or critical.")
@click.option("--log-file", default=None, help="Also log to this file.")
def serve(**options: Any) -> None:
    """Run the server."""
    settings = resolve_settings(**options)
    run_server(settings)


def run_server(
    settings: Settings, *, tls_certificate: str | None = None, tls_key: str | None = None
) -> None:
    """Serve until stopped; with TLS when both a certificate and its key are given."""
    import uvicorn  # imported here: admin commands do not need it

    from opengroup.transport import workers
    from opengroup.transport.http1 import OneWriteHttpProtocol

    logging_config = log_config(settings)
    try:
        logging.config.dictConfig(logging_config)
    except ValueError as exc:  # the log file's folder is missing, or it is a folder
        cause = exc.__cause__
        reason = cause.strerror if isinstance(cause, OSError) else str(exc)
        raise ConfigError(f"cannot write the log file {settings.log_file}: {reason}") from None
    if tls_certificate is not None and tls_key is not None:
        check_tls_pair(tls_certificate, tls_key)
    prepared = prepare(settings)
    assert prepared.keys is not None
    if prepared.db.autovacuum_off():
        log.warning(
            "PostgreSQL's autovacuum is off: the rows the server deletes (expired request "
            "nonces, tokens and files) are never reclaimed, and its tables grow and slow "
            "down; set autovacuum = on, or VACUUM the database regularly"
        )
    prepared.db.dispose()
    click.echo(
        f"opengroup listening on {settings.host}:{settings.port} "
        f"with {settings.workers} worker(s), database {prepared.db.dialect}"
    )
    click.echo("Join URLs (http://HOST[:PORT]/ROOM?public_key=KEY):")
    print_join_urls(prepared)
    click.echo(HTTPS_NOTE)
    os.environ.update(settings.as_env())
    config = uvicorn.Config(
        "opengroup.app:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=logging_config,
        access_log=False,
        server_header=False,
        http=OneWriteHttpProtocol,
        timeout_keep_alive=settings.keep_alive_seconds,
        # The client's address matters only to /metrics' allow-list; without
        # metrics, X-Forwarded-For is not even looked at.
        proxy_headers=settings.metrics_enabled,
        ssl_certfile=tls_certificate,
        ssl_keyfile=tls_key,
    )
    # With metrics on: a fresh directory the workers add their counters up in.
    with multiprocess_directory(settings):
        try:
            exit_code = workers.serve(config, settings.workers, settings.worker_timeout_seconds)
        except workers.ListenError as exc:
            raise ConfigError(str(exc)) from None
    if exit_code:
        raise SystemExit(exit_code)


def check_tls_pair(certificate: str, key: str) -> None:
    """Refuse to start, with the reason, if the certificate and its key cannot serve
    HTTPS together (each worker would fail to start with a traceback)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certificate, key)
        return
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = "the key is not the certificate's"
        else:
            reason = "not a PEM certificate and its PEM private key"
    except OSError as exc:  # (a file missing or unreadable)
        reason = exc.strerror or str(exc)
    raise ConfigError(
        f"cannot serve HTTPS with the certificate {certificate} and the key {key}: {reason}"
    )


@click.command()
@common_options
def url(**options: Any) -> None:
    """Print the join URL of every room."""
    prepared = open_server(with_keys=True, **options)
    print_join_urls(prepared)
    click.echo(f"# server public key: {prepared.keys.public_hex if prepared.keys else ''}")
    click.echo(f"# {HTTPS_NOTE}")
