"""Logging setup: text or JSON lines, with phone numbers masked wherever they appear."""

from __future__ import annotations

import logging
import re
import sys

import orjson

# Phone-shaped runs: "+" followed by 8+ digits in groups, grouped local numbers
# ((021) 5555-0199, 138-0013-8000) or 11-15 bare digits (13800138000). Offsets, counts,
# dates and times do not match.
_PHONE = re.compile(
    r"\+\d[\d .()-]{6,}\d"
    r"|(?<![\w:.-])\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]\d{3,4}(?![\w:])"
    r"|\(\d{2,4}\) ?\d{3,4}[ .-]?\d{4}"
    r"|(?<![\w.-])\d{11,15}(?![\w])"
)


def mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: _mask(m.group()), text)


def _mask(number: str) -> str:
    digits = [c for c in number if c.isdigit()]
    return "***" + "".join(digits[-2:]) if len(digits) >= 7 else number


class _MaskingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = mask_phones(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:  # noqa: N802
        return mask_phones(super().formatException(ei))


class _JsonFormatter(logging.Formatter):
    FIELDS = ("event_id", "shipment_id", "batch", "summary", "partitions")

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,  # tells apart the workers of `hub run --workers N`
            "message": mask_phones(record.getMessage()),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                doc[name] = getattr(record, name)
        if record.exc_info:
            doc["exception"] = mask_phones(self.formatException(record.exc_info))
        return orjson.dumps(doc).decode()


FASTSTREAM_LOGGER = "hub.faststream"


class _NoPartitionLists(logging.Filter):
    """FastStream logs every partition a consumer is assigned on one INFO line (1,300 characters for
    the three topics); the hub logs them counted per topic instead (hub.inbound.AssignmentLog)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "assigned to partitions" not in str(record.msg)


def faststream_logger() -> logging.Logger:
    """The logger handed to FastStream, without its partition lists."""
    logger = logging.getLogger(FASTSTREAM_LOGGER)
    if not any(isinstance(f, _NoPartitionLists) for f in logger.filters):
        logger.addFilter(_NoPartitionLists())
    return logger


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_MaskingFormatter("%(asctime)s %(process)d %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
