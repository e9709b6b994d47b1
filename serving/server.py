"""Run the API on uvicorn.

uvicorn builds the app in each worker process from `app_factory`, which can take no arguments:
the configuration file reaches it as LAMBDASTACK_CONFIG, which `run` sets to the file it was
given (so `lambdastack serve --config F` serves F, in every worker), and `--host`/`--port` as
their environment overrides. Each connection is served by `serving.connections`'s protocol
(httptools with a header deadline and size limit), within `serving.limit_concurrency`.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from lambdastack.settings import CONFIG_ENV, ENV_PREFIX, ServingSettings, Settings, load_settings
from serving.connections import GuardedHttpToolsProtocol

FACTORY = "serving.server:app_factory"


def app_factory() -> object:
    """uvicorn factory: settings from the environment (LAMBDASTACK_CONFIG and overrides)."""
    from serving.app import create_app

    return create_app(load_settings())


def prepare(config: Path, host: str | None = None, port: int | None = None) -> Settings:
    """The settings of `config` with the command line's host and port (a ConfigError now, not in
    a worker: placeholder API keys on a host beyond loopback are one), and LAMBDASTACK_CONFIG and
    those overrides set for the workers' `app_factory`."""
    overrides = {f"{ENV_PREFIX}SERVING__HOST": host, f"{ENV_PREFIX}SERVING__PORT": port}
    os.environ.update({name: str(value) for name, value in overrides.items() if value is not None})
    settings = load_settings(config)
    os.environ[CONFIG_ENV] = str(config.resolve())
    return settings


def uvicorn_options(serving: ServingSettings) -> dict[str, Any]:
    """What uvicorn gets of the serving settings: the address and the limits on clients."""
    protocol = partial(
        GuardedHttpToolsProtocol,
        header_timeout_s=serving.header_timeout_s,
        max_header_bytes=serving.max_header_bytes,
    )
    return {
        "host": serving.host,
        "port": serving.port,
        "http": protocol,
        "limit_concurrency": serving.limit_concurrency,
        "timeout_keep_alive": serving.timeout_keep_alive_s,
    }


def run(config: Path, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    import uvicorn

    settings = prepare(config, host, port)
    uvicorn.run(
        FACTORY,
        factory=True,
        workers=workers,
        loop="uvloop",
        log_level="warning",
        access_log=False,
        **uvicorn_options(settings.serving),
    )
