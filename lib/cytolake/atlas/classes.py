"""The classes that images are trained and scored on: the atlas's areas, or one class per area name.

The Juelich maps split every area into a left and a right map, and the `areas` table keeps that split
(`area_index`). A patch shows its area's cytoarchitecture, which is the same in both hemispheres, and no
patch shows which hemisphere it was cut from. With `atlas.merge_hemispheres` the contrastive weights, the
supervised labels and the scored classes use one class per area name, so two patches of one area in
opposite hemispheres count as the same area; the pmaps stay hemisphere-split wherever they are an input
(GNN+'s node inputs and coordinates), and predictions are stored as areas again (`area_of`), taking the
hemisphere whose map is the larger at the node, or where both are zero, the hemisphere that holds more of the
node's probability over all areas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Classes:
    merged: bool
    names: tuple[str, ...]  # one per class
    of_area: np.ndarray  # class index of each area_index
    hemisphere: tuple[str, ...]  # of each area_index: L | R | B

    def __len__(self) -> int:
        return len(self.names)

    @property
    def description(self) -> str:
        kind = "areas with both hemispheres merged" if self.merged else "areas, left and right apart"
        return f"{len(self)} classes ({kind})"

    def membership(self) -> np.ndarray:
        """(areas, classes) 0/1 matrix: pmap vectors times it are class probability vectors."""
        m = np.zeros((len(self.of_area), len(self)), np.float32)
        m[np.arange(len(self.of_area)), self.of_area] = 1.0
        return m

    def pmap(self, p: np.ndarray) -> np.ndarray:
        """Area probability vectors (n, areas) summed into class probability vectors (n, classes)."""
        return (np.asarray(p, np.float32) @ self.membership()).astype(np.float32)

    def label(self, area_label: np.ndarray) -> np.ndarray:
        """Area labels (-1: none) as class labels (-1: none)."""
        a = np.asarray(area_label, np.int64)
        return np.where(a >= 0, self.of_area[np.maximum(a, 0)], -1)

    def area_of(self, cls: np.ndarray, pmap: np.ndarray) -> np.ndarray:
        """The area of each node's class `cls`: of the class's areas, the one whose map is largest at the node
        (`pmap`, n x areas). Where all of them are zero (a class predicted off its maps), the one of the
        hemisphere that holds more of the node's probability over all areas, so a node on the right is not
        named a left area for want of evidence."""
        cls, pmap = np.asarray(cls, np.int64), np.asarray(pmap, np.float32)
        in_class = self.of_area[None, :] == cls[:, None]
        by_map = np.where(in_class, pmap, -1.0)
        sides, side = np.unique(np.array(self.hemisphere), return_inverse=True)
        side_mass = pmap @ np.eye(len(sides), dtype=np.float32)[side]  # (n, hemispheres): the node's mass in each
        by_side = np.where(in_class, side_mass[:, side], -1.0)  # each area's hemisphere's mass at the node
        return np.where(by_map.max(1) > 0, by_map.argmax(1), by_side.argmax(1))


def classes_of(areas: pa.Table | list[dict], merge: bool) -> Classes:
    """The class set of the registered areas (rows with area_index, name, hemisphere, label), in area order: one class
    per area, named by its label, or with `merge` one per area name, numbered by the name's first area."""
    rows = sorted(areas.to_pylist() if isinstance(areas, pa.Table) else areas, key=lambda a: a["area_index"])
    if [a["area_index"] for a in rows] != list(range(len(rows))):
        raise ValueError("areas must be numbered 0..n-1 (the `areas` table of a registered lake)")
    labels = [a["name"] if merge else a["label"] for a in rows]
    names = list(dict.fromkeys(labels))
    return Classes(merge, tuple(names), np.array([names.index(n) for n in labels], np.int64),
                   tuple(a["hemisphere"] for a in rows))
