"""Route the plugin's ``logging`` records to Unreal's Output Log at the matching verbosity.

Without this, Python's default handler writes to stderr, which the editor shows as errors.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "emoface_unreal"


class UnrealLogHandler(logging.Handler):
    """Sends records to ``unreal.log`` / ``log_warning`` / ``log_error``."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record to the Output Log (never raises)."""
        try:
            import unreal

            message = self.format(record)
            if record.levelno >= logging.ERROR:
                unreal.log_error(message)
            elif record.levelno >= logging.WARNING:
                unreal.log_warning(message)
            else:
                unreal.log(message)
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


def install_log_handler(level: int = logging.INFO) -> logging.Logger:
    """Attach the handler to the plugin's logger once; returns the logger."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, UnrealLogHandler) for h in logger.handlers):
        handler = UnrealLogHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    return logger
