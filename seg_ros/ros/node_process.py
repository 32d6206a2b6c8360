"""Run the segmentation node in a process of its own, as a user's launch would.

For tools that drive the node over DDS (seg-demo, the node benchmark, seg-bag-eval's live
replay) and the ROS tests: the node gets its own interpreter, executor and GIL, so what they
measure is what a separate camera driver sees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

NODE_MODULE = "seg_ros.ros.node"
# The tree this seg_ros was imported from: a source checkout, or site-packages.
IMPORT_ROOT = Path(__file__).resolve().parents[2]


def node_command(
    name: str,
    namespace: str = "/",
    params: dict[str, Any] | None = None,
    params_file: str | Path | None = None,
    log_level: str | None = None,
) -> list[str]:
    """``python -m seg_ros.ros.node --ros-args ...`` for this interpreter."""
    cmd = [sys.executable, "-m", NODE_MODULE, "--ros-args", "-r", f"__node:={name}"]
    if namespace not in ("", "/"):
        cmd += ["-r", f"__ns:={namespace}"]
    if params_file:
        cmd += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["-p", f"{key}:={text}"]
    if log_level:
        cmd += ["--log-level", log_level]
    return cmd


def node_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) for a node whose output goes to a log
    file: unbuffered, uncoloured, and running the seg_ros this process runs (a source checkout
    included) rather than another copy on the path. The ROS wheels' bootstrap variables
    (LD_LIBRARY_PATH, ...) pass through unchanged, so rclpy imports there too."""
    env = dict(os.environ if base is None else base)
    env.update(PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    path = (str(IMPORT_ROOT), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return env


def stop_process(process: subprocess.Popen, timeout: float) -> int:
    """SIGINT (the node deactivates and exits cleanly), SIGKILL if it does not in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class NodeProcess:
    """The node as a child process; its output goes to ``log_path`` and, with ``echo``, to
    this process's stderr with a prefix."""

    def __init__(
        self,
        command: list[str],
        log_path: str | Path,
        echo: TextIO | None = None,
        prefix: str = "[node] ",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._echo, self._prefix = echo, prefix
        self._tail: deque[str] = deque(maxlen=200)
        # The child inherits this interpreter's environment, including what the ROS wheels'
        # bootstrap put there (LD_LIBRARY_PATH), so rclpy imports there too.
        child_env = dict(env or os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self.log_path.open("w") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self._tail.append(line)
                if self._echo is not None:
                    self._echo.write(self._prefix + line)
                    self._echo.flush()

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "".join(list(self._tail)[-lines:])

    def stop(self, timeout: float = 20.0) -> int:
        code = stop_process(self.process, timeout)
        self._reader.join(timeout=5)
        return code
