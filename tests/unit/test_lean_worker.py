"""A served worker imports what serving needs, and the rest on first use: each module below
would sit in every worker's memory (about 1-14 MiB each) although most workers never use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET_KEY

#: Imported on first use only: the outbound HTTP client (webhooks, breach corpus, the SDK's
#: remote clients), Redis (counters and rate limits on the memory store), the QR code writer
#: (TOTP enrollment), SMTP, the password strength estimator and passkeys; and rich, which
#: structlog would import for tracebacks Bastion renders itself (never used by a worker); and
#: the CEL library (authorization conditions: only a model that has some compiles them).
FIRST_USE = (
    "httpx",
    "httpcore",
    "redis",
    "segno",
    "aiosmtplib",
    "zxcvbn",
    "webauthn",
    "rich",
    "cel_expr_python",
)

_WORKER = """
import asyncio, json, sys
from bastion.asgi import app_from_env
app = app_from_env()

async def serve() -> None:  # what a worker runs before its first request
    async with app.router.lifespan_context(app):
        pass

asyncio.run(serve())
print(json.dumps(sorted(sys.modules)))
"""


def test_served_app_leaves_first_use_modules_unimported(tmp_path: Path) -> None:
    # A fresh interpreter: this test process has imported everything already.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_ENV="test",
        BASTION_DATA_DIR=str(tmp_path),
        BASTION_SECRET_KEY=TEST_SECRET_KEY,
        BASTION_MAILER="file",
    )
    bastion = Path(sys.executable).with_name("bastion")
    subprocess.run([bastion, "migrate"], env=env, capture_output=True, check=True)  # noqa: S603
    # The first start stores the built-in authorization model (validating it compiles its
    # condition: CEL); every later worker start finds it stored.
    for _ in range(2):
        done = subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
            [sys.executable, "-c", _WORKER], env=env, capture_output=True, text=True, check=True
        )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "bastion.app" in loaded  # the app was really built
    assert not sorted(name for name in FIRST_USE if name in loaded)
