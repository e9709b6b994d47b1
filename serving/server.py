"""Run the API on uvicorn.

uvicorn builds the app in each worker process from `app_factory`, which can take no arguments:
the configuration file reaches it as LAMBDASTACK_CONFIG, which `run` sets to the file it was
given (so `lambdastack serve --config F` serves F, in every worker).
"""

from __future__ import annotations

import os
from pathlib import Path

from lambdastack.settings import CONFIG_ENV, Settings, load_settings

FACTORY = "serving.server:app_factory"


def app_factory() -> object:
    """uvicorn factory: settings from the environment (LAMBDASTACK_CONFIG and overrides)."""
    from serving.app import create_app

    return create_app(load_settings())


def prepare(config: Path) -> Settings:
    """The settings of `config` (a ConfigError now, not in a worker), and LAMBDASTACK_CONFIG set
    to it for the workers' `app_factory`."""
    settings = load_settings(config)
    os.environ[CONFIG_ENV] = str(config.resolve())
    return settings


def run(config: Path, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    import uvicorn

    settings = prepare(config)
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host or settings.serving.host,
        port=port or settings.serving.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
