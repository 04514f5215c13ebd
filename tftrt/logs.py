"""tftrt's logging: one ``tftrt.<module>`` logger per part, verbose levels from TFTRT_LOG.

``TFTRT_LOG=segment=2,lowering=1`` shows debug messages of ``tftrt.segment``
(why each segment was cut) and info messages of ``tftrt.lowering``; ``TFTRT_LOG=2``
turns every module up. The modules are ``tftrt.env.LOG_MODULES``. Messages go
wherever the application's logging sends them; when it has configured no
handler, tftrt adds one writing to stderr, so verbose logs show without any
setup. Read at ``import tftrt``; ``configure()`` re-reads the variable.
"""

from __future__ import annotations

import logging
import sys

import tftrt.env as env
from tftrt.errors import EnvironmentVariableError

ROOT = "tftrt"
_handler: logging.Handler | None = None


def configure(spec: str | None = None) -> dict[str, int]:
    """Set the per-module levels from ``spec`` (default: $TFTRT_LOG); returns them.

    Modules not named go back to the default (warnings and errors).
    """
    levels = env.parse_log_spec(spec) if spec is not None else env.get("TFTRT_LOG")
    for module in env.LOG_MODULES:
        logging.getLogger(f"{ROOT}.{module}").setLevel(levels.get(module, logging.NOTSET))
    if levels:
        _ensure_handler()
    return levels


def _ensure_handler() -> None:
    """A stderr handler on ``tftrt`` when nothing would print below WARNING otherwise."""
    global _handler
    if _handler is not None or logging.getLogger().handlers or logging.getLogger(ROOT).handlers:
        return
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    logging.getLogger(ROOT).addHandler(_handler)


def configure_from_env() -> None:
    """``configure()`` at import: a malformed TFTRT_LOG is a warning, not an import error."""
    try:
        configure()
    except EnvironmentVariableError as exc:
        logging.getLogger(f"{ROOT}.env").warning("%s; verbose logs stay off", exc)
