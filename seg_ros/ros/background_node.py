"""An rclpy node in a context of its own, spun by an executor on a background thread.

For the programs that talk to the segmentation node from outside it (the client that seg-demo
and the node benchmark use, the bag replayer, the tests' probe): callbacks run on the
executor's thread while the caller's thread publishes on its own schedule and waits. A context
of its own keeps it apart from any other rclpy use in the same process.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any


class BackgroundNode:
    """Create ``node``'s publishers and subscriptions, then ``start()``; ``close()`` at the end."""

    def __init__(self, name: str, namespace: str | None = None, threads: int = 1) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        # No rclpy signal handlers (rclpy's default for a context other than the global one;
        # said here so that it stays so): Ctrl-C stays a KeyboardInterrupt, so the caller's
        # cleanup, such as stopping a node it started, runs.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.threads = threads
        self.executor: Any = None
        self._thread: threading.Thread | None = None

    def start(self, thread_name: str | None = None) -> None:
        from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

        if self.threads == 1:
            self.executor = SingleThreadedExecutor(context=self.context)
        else:
            self.executor = MultiThreadedExecutor(num_threads=self.threads, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=thread_name, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def close(self, join_timeout: float = 10.0) -> None:
        import rclpy

        if self.executor is not None:
            self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(timeout=join_timeout)
