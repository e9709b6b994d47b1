"""Run the API on uvicorn."""

from __future__ import annotations

import os

from lambdastack.settings import Settings


def app_factory() -> object:
    """uvicorn factory: settings from the environment (LAMBDASTACK_CONFIG and overrides)."""
    from lambdastack.settings import load_settings
    from serving.app import create_app

    return create_app(load_settings())


def run(settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    import uvicorn

    os.environ.setdefault("LAMBDASTACK_CONFIG", str(settings.root / "conf" / "lambdastack.yaml"))
    uvicorn.run(
        "serving.server:app_factory",
        factory=True,
        host=host or settings.serving.host,
        port=port or settings.serving.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
