"""The inference package's Python logging (e.g. the random-weights warning) into the ROS log,
so it reaches the console and /rosout like the node's own messages."""

from __future__ import annotations

import logging
from typing import Any


class RosLogHandler(logging.Handler):
    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        elif record.levelno >= logging.INFO:
            self._logger.info(text)
        else:
            self._logger.debug(text)


def attach(logger: Any) -> RosLogHandler:
    """Route the ``seg_ros`` loggers into ``logger`` (an rclpy logger); detach() undoes it."""
    handler = RosLogHandler(logger)
    package_log = logging.getLogger("seg_ros")
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    package_log.propagate = False  # the ROS log is this process's log; no second copy
    return handler


def detach(handler: RosLogHandler) -> None:
    logging.getLogger("seg_ros").removeHandler(handler)
