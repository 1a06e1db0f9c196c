"""A logger adapter that keeps credentials out of log records (the API key, auth headers)."""

from __future__ import annotations

import logging
from typing import Any, Final

REDACTED: Final = "<redacted>"
#: Request headers whose value is a credential (``websockets`` logs each header at DEBUG).
_SECRET_HEADERS: Final = frozenset({"authorization", "openai-api-key", "x-twilio-signature"})


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """Blanks the given secrets, and the value of any credential header, in every record."""

    def __init__(self, logger: logging.Logger, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(logger, {})
        self._secrets = tuple(s for s in secrets if s)

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
        return value

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        clean = [self._clean(arg) for arg in args]
        # websockets logs each request header as ("> %s: %s", name, value).
        if len(clean) == 2 and str(clean[0]).lower() in _SECRET_HEADERS:
            clean[1] = REDACTED
        self.logger.log(level, self._clean(msg), *clean, **kwargs)
