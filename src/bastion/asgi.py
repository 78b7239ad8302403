"""ASGI entry point for uvicorn workers: ``uvicorn --factory bastion.asgi:app_from_env``.

Each worker process reads its settings from the environment (``BASTION_*``) itself.
"""

from __future__ import annotations

from fastapi import FastAPI

from bastion import logging as bastion_logging
from bastion.app import create_app
from bastion.config.settings import Settings


def app_from_env() -> FastAPI:
    settings = Settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    return create_app(settings, freeze_gc_after_startup=True)
