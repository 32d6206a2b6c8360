"""A synthetic street scene (sky, buildings, road, cars, poles) that moves frame to frame: the
demo's and the benchmarks' input where no camera or recording is given. Drawn with numpy/cv2
rather than taken from a dataset so it needs no files; it is cartoonish by design."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class StreetScene:
    """A drive down a street, drawn in perspective: sky, facades, sidewalks, road markings,
    poles, trees and cars, the camera moving forward one step per frame. Made by the project
    (nothing downloaded), with the layout of a CamVid/Cityscapes frame so a street model has
    something meaningful to label."""

    def __init__(self, width: int = 480, height: int = 360, seed: int = 0) -> None:
        self.w, self.h = width, height
        self.rng = np.random.default_rng(seed)
        self.horizon = int(height * 0.42)
        self.vx = width / 2
        self.f = width * 0.9  # focal length in pixels
        self.cam_height = 1.4  # metres
        self.speed = 0.6  # metres per frame
        self.far = 80.0
        rng = self.rng
        self.buildings = [  # side, start z, length, height, colour
            (side, z, float(rng.uniform(6, 14)), float(rng.uniform(6, 18)), _colour(rng, 60, 200))
            for side in (-1, 1)
            for z in np.cumsum(rng.uniform(6, 14, 12))
        ]
        self.trees = [(side, float(z)) for side in (-1, 1) for z in rng.uniform(0, self.far, 5)]
        self.poles = [(side, float(z)) for side in (-1, 1) for z in np.arange(5, self.far, 16)]
        self.cars = [  # lane x, z, own speed, colour
            (float(rng.choice([-1.8, 1.8])), float(rng.uniform(8, self.far)),
             float(rng.uniform(-0.3, 0.5)), _colour(rng, 20, 230))
            for _ in range(5)
        ]  # fmt: skip
        self.sky = np.linspace([110, 150, 210], [200, 215, 235], self.horizon).astype(np.uint8)

    def _project(self, x: float, y: float, z: float) -> tuple[int, int]:
        z = max(z, 0.3)
        return int(self.vx + self.f * x / z), int(self.horizon + self.f * (self.cam_height - y) / z)

    def _quad(self, img: np.ndarray, pts: list[tuple[float, float, float]], colour: Any) -> None:
        import cv2

        poly = np.array([self._project(*p) for p in pts], np.int32)
        cv2.fillConvexPoly(img, poly, tuple(int(c) for c in colour))

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 RGB: far things first, near ones painted over."""
        img = np.empty((self.h, self.w, 3), np.uint8)
        img[: self.horizon] = self.sky[:, None, :]
        img[self.horizon :] = (95, 95, 100)
        travelled = index * self.speed
        self._road(img)
        self._buildings(img, travelled)
        self._dashes(img, travelled)
        self._roadside(img, index, travelled)
        noise = self.rng.integers(-6, 7, img.shape, dtype=np.int16)
        return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    def _road(self, img: np.ndarray) -> None:
        near, far = 0.5, self.far
        self._quad(
            img, [(-3.5, 0, near), (3.5, 0, near), (3.5, 0, far), (-3.5, 0, far)], (70, 70, 75)
        )
        for side in (-1, 1):  # sidewalks and kerbs
            a, b = sorted((side * 3.5, side * 7.0))
            self._quad(img, [(a, 0, near), (b, 0, near), (b, 0, far), (a, 0, far)], (150, 140, 130))

    def _buildings(self, img: np.ndarray, travelled: float) -> None:
        near, far = 0.5, self.far
        period = 40.0 * 12
        for side, z0, length, height, colour in sorted(self.buildings, key=lambda b: -b[1]):
            z = (z0 - travelled) % period
            if z > far or z + length < near:
                continue
            x = side * 7.0
            z1, z2 = max(z, near), min(z + length, far)
            self._quad(img, [(x, 0, z1), (x, height, z1), (x, height, z2), (x, 0, z2)], colour)
            for wy in np.arange(2.0, height - 1, 3.0):  # windows
                for wz in np.arange(z + 1.0, z + length - 1, 2.5):
                    if near < wz < far - 1:
                        pane = [
                            (x, wy, wz),
                            (x, wy + 1.2, wz),
                            (x, wy + 1.2, wz + 1),
                            (x, wy, wz + 1),
                        ]
                        self._quad(img, pane, (60, 80, 110))

    def _dashes(self, img: np.ndarray, travelled: float) -> None:
        near = 0.5
        for dz in np.arange(-(travelled % 6.0), self.far, 6.0):  # centre line dashes
            if dz + 3 > near:
                z1 = max(dz, near)
                self._quad(
                    img, [(-0.08, 0, z1), (0.08, 0, z1), (0.08, 0, dz + 3), (-0.08, 0, dz + 3)],
                    (235, 235, 220),
                )  # fmt: skip

    def _roadside(self, img: np.ndarray, index: int, travelled: float) -> None:
        """Poles, trees and cars, farthest first."""
        things: list[tuple[float, str, Any]] = []
        loop = self.far
        things += [(((z - travelled) % loop), "pole", s) for s, z in self.poles]
        things += [(((z - travelled) % loop), "tree", s) for s, z in self.trees]
        for x, z0, own, colour in self.cars:
            things.append((((z0 + index * own) % loop) + 0.5, "car", (x, colour)))
        draw = {"pole": self._pole, "tree": self._tree, "car": self._car}
        for z, kind, data in sorted(things, key=lambda t: -t[0]):
            if z >= 1.0:
                draw[kind](img, z, data)

    def _pole(self, img: np.ndarray, z: float, side: float) -> None:
        self._upright(img, side * 3.8, 0.06, 0, 6, z, (120, 120, 120))

    def _upright(
        self, img: np.ndarray, x: float, half: float, bottom: float, top: float, z: float,
        colour: Any,
    ) -> None:  # fmt: skip
        """A flat upright rectangle facing the camera, ``half`` wide either side of ``x``."""
        corners = [(x - half, bottom, z), (x + half, bottom, z), (x + half, top, z),
                   (x - half, top, z)]  # fmt: skip
        self._quad(img, corners, colour)

    def _tree(self, img: np.ndarray, z: float, side: float) -> None:
        import cv2

        x = side * 5.0
        self._upright(img, x, 0.12, 0, 3, z, (90, 60, 30))
        cx, cy = self._project(x, 4.2, z)
        cv2.circle(img, (cx, cy), max(1, int(self.f * 1.6 / z)), (50, 120, 40), -1)

    def _car(self, img: np.ndarray, z: float, data: tuple[float, Any]) -> None:
        import cv2

        x, colour = data
        self._upright(img, x, 0.9, 0.3, 1.4, z, colour)
        self._quad(
            img,
            [(x - 0.7, 1.4, z), (x + 0.7, 1.4, z), (x + 0.6, 1.9, z), (x - 0.6, 1.9, z)],
            (40, 50, 60),
        )
        for wx in (x - 0.6, x + 0.6):
            cx, cy = self._project(wx, 0.3, z)
            cv2.circle(img, (cx, cy), max(1, int(self.f * 0.3 / z)), (20, 20, 20), -1)


def _colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def synthetic_frames(width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    scene = StreetScene(width, height, seed)
    index = 0
    while True:
        yield scene.frame(index)
        index += 1
