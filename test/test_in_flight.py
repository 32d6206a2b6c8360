"""The slots that keep frames in flight for runtimes whose call blocks (onnxruntime, TensorRT):
at most N frames run, a further one waits to be started, every frame lands exactly once, with
its output or its error, and each slot's output reaches the frame that ran on it."""

from __future__ import annotations

import threading

from seg_ros.inference.backends.in_flight import InFlight


def test_a_frame_waits_for_a_free_slot_and_every_frame_lands_once() -> None:
    release = threading.Event()
    running: list[str] = []
    lock = threading.Lock()

    def run(slot: str, batch: int) -> tuple[str, int]:
        with lock:
            running.append(slot)
        release.wait(10)
        return slot, batch

    runner = InFlight(["a", "b"], run, "test-in-flight")
    landed: list[tuple[str, int]] = []
    runner.start(1, landed.append)
    runner.start(2, landed.append)
    third = threading.Thread(target=runner.start, args=(3, landed.append))
    third.start()
    third.join(0.3)
    assert third.is_alive(), "a third frame started while both slots were busy"
    assert sorted(running) == ["a", "b"]
    release.set()
    third.join(10)
    runner.wait_idle()
    assert sorted(b for _, b in landed) == [1, 2, 3]
    assert {s for s, _ in landed} <= {"a", "b"}


def test_a_failed_run_reaches_its_frame_and_frees_its_slot() -> None:
    def run(slot: None, batch: int) -> int:
        if batch < 0:
            raise ValueError(f"bad batch {batch}")
        return batch * 10

    runner = InFlight([None], run, "test-in-flight")
    done: list[int] = []
    failed: list[BaseException] = []
    runner.start(-1, done.append, failed.append)
    runner.start(2, done.append, failed.append)  # waits for the one slot, freed by the failure
    runner.wait_idle()
    assert done == [20]
    assert len(failed) == 1 and "bad batch -1" in str(failed[0])
