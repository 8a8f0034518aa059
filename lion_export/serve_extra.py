"""The one message for a serving package that is not installed: serving is optional, so `lion-export serve`,
`triton-repo` or a `triton://` model on an installation without it must say which extra brings it, in one line
(exit 2), not a traceback. Shared by lion_export/serving/ and the Triton client runner below it.
"""
from __future__ import annotations

import importlib
from types import ModuleType

EXTRA = 'pip install "lion-export[serve]"'


class ServingUnavailable(ValueError):
    """A package serving needs (tritonclient, nvidia-pytriton) is not installed."""


def require(module: str, package: str) -> ModuleType:
    """Import `module`, or ServingUnavailable naming `package` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ServingUnavailable(f"{package} is not installed ({exc}); install the serving extra: {EXTRA}") from None


__all__ = ["EXTRA", "ServingUnavailable", "require"]
