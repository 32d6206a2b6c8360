"""Pairing two message streams by header stamp.

A recorder writes messages in arrival order, so a label may come before or after its image,
and some frames have no label at all. Items wait here until their partner arrives; only the
unpaired ones are held, so a bag is evaluated in one pass however long it is.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from seg_ros.bag.io import format_stamp

A = TypeVar("A")
B = TypeVar("B")


class DuplicateStampError(ValueError):
    """Two messages of one stream carry the same stamp: pairing by stamp would be a guess."""


class StampJoin(Generic[A, B]):
    """Items of stream ``a`` and stream ``b``, each keyed by stamp (ns); ``add_a``/``add_b``
    return the partner when it is already here, else keep the item and return None."""

    def __init__(self, name_a: str = "a", name_b: str = "b") -> None:
        self.names = (name_a, name_b)
        self._waiting: tuple[dict[int, A], dict[int, B]] = ({}, {})
        self._seen: tuple[set[int], set[int]] = (set(), set())
        self.pairs = 0

    def add_a(self, stamp: int, item: A) -> B | None:
        return self._add(0, stamp, item)

    def add_b(self, stamp: int, item: B) -> A | None:
        return self._add(1, stamp, item)

    def _add(self, side: int, stamp: int, item: object) -> object | None:
        seen = self._seen[side]
        if stamp in seen:
            raise DuplicateStampError(
                f"two {self.names[side]} messages are stamped {format_stamp(stamp)}; frames and "
                "their labels are paired by header stamp, so stamps must be unique"
            )
        seen.add(stamp)
        other = self._waiting[1 - side]
        if stamp in other:
            self.pairs += 1
            return other.pop(stamp)
        self._waiting[side][stamp] = item
        return None

    def seen_a(self, stamp: int) -> bool:
        return stamp in self._seen[0]

    def seen_b(self, stamp: int) -> bool:
        return stamp in self._seen[1]

    @property
    def count_a(self) -> int:
        return len(self._seen[0])

    @property
    def count_b(self) -> int:
        return len(self._seen[1])

    def waiting_a(self) -> dict[int, A]:
        """Items of ``a`` no ``b`` has matched (so far)."""
        return dict(self._waiting[0])

    def waiting_b(self) -> dict[int, B]:
        return dict(self._waiting[1])
