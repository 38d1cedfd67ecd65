"""Batch margins of a LightGBM booster by leaf bitmasks, bit for bit what `Booster.predict` gives.

Walking a tree node by node costs about 110 ns per tree and row on this 2-core machine (`Booster.
predict`, and a compiled walker too): every node is a dependent load and a branch the CPU cannot
predict. A million leads through two boosters of ~230 trees was most of a batch run.

Here no tree is walked (the QuickScorer idea, Lucchese et al., SIGIR 2015). A leaf a row can reach
is one no node on its path sends it away from. Number each tree's leaves left to right; a node that
sends a row right rules out the leaves of its left subtree. Whether a node sends a row right
depends only on which interval between the tree's thresholds (or which category) the row's value
falls in, its *bin*; so for every feature, bin and tree the leaves ruled out are worked out once,
when the forest is built, as one bitmask. Scoring a row is then: bin each feature, AND the masks
of its bins (tree by tree, a vector operation), and take each tree's lowest leaf left standing,
which is the leaf LightGBM's walk ends in. Its value is added in LightGBM's order from 0.0, so the
sums are identical, not just close.

The decisions are LightGBM's own (`include/LightGBM/tree.h`: NumericalDecision,
CategoricalDecision on x86), applied to one value from each bin. The kernel is compiled by Numba
and holds no GIL, so callers scoring chunks on a thread pool use every core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from models.jit import njit, trailing_zeros

if TYPE_CHECKING:  # a built forest scores without LightGBM (see models.acceptance)
    import lightgbm as lgb

_CATEGORICAL, _DEFAULT_LEFT = 1, 2  # decision_type bits (kCategoricalMask, kDefaultLeftMask)
_MISSING_ZERO, _MISSING_NAN = 1, 2  # (decision_type >> 2) & 3 (MissingType)
# kZeroThreshold (1e-35f): LightGBM reads any input value this close to 0 as 0.0
_ZERO = float(np.float32(1e-35))
MAX_LEAVES = 64  # a tree's leaves must fit one 64-bit mask


class UnsupportedModel(ValueError):
    """A booster this scorer does not cover (linear trees, more than 64 leaves, several
    classes, random forests); `Booster.predict` scores it instead."""


@dataclass(frozen=True)
class Forest:
    """A booster's trees (the iterations `Booster.predict` uses by default) as bin masks."""

    features: int
    numeric: np.ndarray  # per feature: 1 if its bins are intervals, 0 if categories
    edges: np.ndarray  # numeric features' bin edges, one run per feature
    edge_start: np.ndarray  # per feature, where its edges start (one more at the end)
    bins: np.ndarray  # per feature, how many bins (categories + 1 for every other value)
    mask_start: np.ndarray  # per feature, the row of `masks` for its bin 0
    masks: np.ndarray  # (sum of bins, trees): leaves still possible after that bin's splits
    # (uint32 when every tree has at most 32 leaves, else uint64)
    leaf_start: np.ndarray  # per tree, where its leaves start in `leaf_value` (left to right)
    leaf_value: np.ndarray

    @classmethod
    def of(cls, booster: lgb.Booster) -> Forest:
        return _build(_parse(booster.model_to_string()), booster.num_feature())

    def loaded(self) -> Forest:
        """This forest, its kernel compiled or loaded from Numba's cache in this process (once
        a process, before forking workers that inherit it; microseconds after that)."""
        self.raw_scores(np.zeros((1, self.features), dtype=np.float32))
        return self

    @cached_property
    def narrowing(self) -> np.ndarray:
        """Per row of `masks`, whether it rules out any leaf: about a quarter of a row's bins are
        ones every split on the feature sends left, and ANDing them is skipped."""
        return (self.masks != ~self.masks.dtype.type(0)).any(axis=1).view(np.uint8)

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        """Raw margins, as `Booster.predict(matrix, raw_score=True)` gives them."""
        if matrix.ndim != 2 or matrix.shape[1] != self.features:
            raise ValueError(f"expected {self.features} features, got a matrix of {matrix.shape}")
        out = np.empty(len(matrix), dtype=np.float64)
        _score(
            np.ascontiguousarray(matrix),
            self.numeric,
            self.edges,
            self.edge_start,
            self.bins,
            self.mask_start,
            self.masks,
            self.narrowing,
            self.leaf_start,
            self.leaf_value,
            out,
        )
        return out


# -- the model text -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tree:
    feature: list[int]
    threshold: list[float]
    decision: list[int]
    left: list[int]  # child node, or ~leaf
    right: list[int]
    categories: list[frozenset[int]]  # a categorical split's left-going categories
    leaf_value: list[float]


def _parse(text: str) -> list[_Tree]:
    head = text.split("\nTree=")[0]
    if int(_fields(head).get("num_tree_per_iteration", "1")) != 1:
        raise UnsupportedModel("only models with one tree per iteration are covered")
    if "\naverage_output" in head:  # a random forest: its margin is the trees' mean
        raise UnsupportedModel("averaged trees (boosting: rf) are not covered")
    return [_tree(_fields(block)) for block in text.split("\nTree=")[1:]]


def _fields(block: str) -> dict[str, str]:
    fields = {}
    for line in block.split("\n"):
        if line.startswith("end of trees"):
            break
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def _tree(fields: dict[str, str]) -> _Tree:
    if fields.get("is_linear", "0") != "0":
        raise UnsupportedModel("linear trees are not covered")
    leaves = int(fields["num_leaves"])
    if leaves > MAX_LEAVES:
        raise UnsupportedModel(f"a tree has {leaves} leaves; at most {MAX_LEAVES} are covered")

    def numbers(key: str) -> list[float]:
        # float() reads LightGBM's round-trip text back to the exact double it wrote.
        return [float(v) for v in fields.get(key, "").split()]

    leaf_value = numbers("leaf_value")
    if leaves == 1:
        return _Tree([], [], [], [], [], [], leaf_value)
    decision = [int(v) for v in numbers("decision_type")]
    threshold = numbers("threshold")
    bounds = [int(v) for v in numbers("cat_boundaries")]
    words = [int(v) for v in numbers("cat_threshold")]
    categories = []
    for kind, value in zip(decision, threshold, strict=True):
        if kind & _CATEGORICAL:
            index = int(value)
            bitset = words[bounds[index] : bounds[index + 1]]
            categories.append(
                frozenset(32 * i + b for i, w in enumerate(bitset) for b in range(32) if w >> b & 1)
            )
        else:
            categories.append(frozenset())
    return _Tree(
        feature=[int(v) for v in numbers("split_feature")],
        threshold=threshold,
        decision=decision,
        left=[int(v) for v in numbers("left_child")],
        right=[int(v) for v in numbers("right_child")],
        categories=categories,
        leaf_value=leaf_value,
    )


def _goes_left(split: _Splits, values: np.ndarray) -> np.ndarray:
    """LightGBM's decisions (splits x values) for values as it reads them (within _ZERO of 0
    is 0.0); a NaN or negative category goes right, as the int cast does on x86."""
    kind = split.decision[:, None]
    missing = (kind >> 2) & 3
    nan = np.isnan(values)[None, :]
    if split.members is not None:  # categorical: the values are the categories, then -1
        return np.hstack([split.members, np.zeros((len(kind), 1), dtype=bool)])
    values = np.where(nan & (missing != _MISSING_NAN), 0.0, values[None, :])
    default = (missing == _MISSING_ZERO) & (np.abs(values) <= _ZERO)
    default |= (missing == _MISSING_NAN) & nan
    with np.errstate(invalid="ignore"):
        below = values <= split.threshold[:, None]
    return np.where(default, (kind & _DEFAULT_LEFT) > 0, below)


@dataclass(frozen=True)
class _Splits:
    """Every split node on one feature, across the trees."""

    tree: np.ndarray
    threshold: np.ndarray
    decision: np.ndarray
    ruled_out: np.ndarray  # the leaves of the node's left subtree, as a mask
    members: np.ndarray | None  # categorical: (splits, categories) left-going


# -- bins and masks -------------------------------------------------------------------------------
def _build(trees: list[_Tree], features: int) -> Forest:
    by_feature: dict[int, list[tuple[int, float, int, int, frozenset[int]]]] = {}
    leaf_start, leaf_values = [], []
    for t, tree in enumerate(trees):
        order, spans = _leaves_in_order(tree)
        leaf_start.append(len(leaf_values))
        leaf_values.extend(tree.leaf_value[leaf] for leaf in order)
        for node, (low, high) in enumerate(spans):
            ruled_out = ((1 << (high - low)) - 1) << low
            by_feature.setdefault(tree.feature[node], []).append(
                (t, tree.threshold[node], tree.decision[node], ruled_out, tree.categories[node])
            )
    edges, edge_start, bins, numeric, splits = [], [0], [], [], []
    for f in range(features):
        nodes = by_feature.get(f, [])
        categorical = any(kind & _CATEGORICAL for _, _, kind, _, _ in nodes)
        if categorical:
            count = 1 + max(max(c, default=-1) for *_, c in nodes)
            members = np.zeros((len(nodes), count), dtype=bool)
            for i, (*_, categories) in enumerate(nodes):
                members[i, list(categories)] = True
            # categories 0..count-1, then one bin for every other value (they all go right)
            values = np.arange(-1, count, dtype=np.float64)[np.r_[1 : count + 1, 0]]
        else:
            members = None
            cuts = sorted({th for _, th, *_ in nodes} | {math.nextafter(-_ZERO, -math.inf), _ZERO})
            edges.extend(cuts)
            # bin j holds (cuts[j-1], cuts[j]]; bin len(cuts) holds what is above; then NaN.
            # The cuts around zero make the bins inside [-_ZERO, _ZERO] hold only values that
            # LightGBM reads as 0.0.
            values = np.array(
                [0.0 if -_ZERO <= c <= _ZERO else c for c in cuts] + [math.inf, math.nan]
            )
        edge_start.append(len(edges))
        bins.append(len(values))
        numeric.append(not categorical)
        columns = list(zip(*nodes, strict=True)) or [[]] * 5
        split = _Splits(
            tree=np.asarray(columns[0], dtype=np.int64),
            threshold=np.asarray(columns[1], dtype=np.float64),
            decision=np.asarray(columns[2], dtype=np.int64),
            ruled_out=np.asarray(columns[3], dtype=np.uint64),
            members=members,
        )
        splits.append((split, values))
    mask_start = np.concatenate([[0], np.cumsum(bins)[:-1]]).astype(np.int64)
    masks = np.full((sum(bins), len(trees)), np.uint64(2**64 - 1), dtype=np.uint64)
    for f, (split, values) in enumerate(splits):
        node, b = np.nonzero(~_goes_left(split, values))
        np.bitwise_and.at(masks, (mask_start[f] + b, split.tree[node]), ~split.ruled_out[node])
    if max((len(t.leaf_value) for t in trees), default=1) <= 32:
        masks = masks.astype(np.uint32)  # half the memory the kernel streams through per row
    return Forest(
        features=features,
        numeric=np.asarray(numeric, dtype=np.int8),
        edges=np.asarray(edges, dtype=np.float64),
        edge_start=np.asarray(edge_start, dtype=np.int64),
        bins=np.asarray(bins, dtype=np.int64),
        mask_start=mask_start,
        masks=masks,
        leaf_start=np.asarray(leaf_start, dtype=np.int64),
        leaf_value=np.asarray(leaf_values, dtype=np.float64),
    )


def _leaves_in_order(tree: _Tree) -> tuple[list[int], list[tuple[int, int]]]:
    """The tree's leaves left to right, and for each split node the positions [low, high) of the
    leaves in its left subtree."""
    order: list[int] = []
    spans = [(0, 0)] * len(tree.feature)

    def visit(child: int) -> None:
        if child < 0:
            order.append(~child)
            return
        low = len(order)
        visit(tree.left[child])
        spans[child] = (low, len(order))
        visit(tree.right[child])

    visit(0 if tree.feature else -1)
    return order, spans


# -- the kernel -----------------------------------------------------------------------------------
_SCAN = 8  # features with at most this many edges are binned by counting, not by bisecting


@njit(nogil=True, cache=True)
def _score(
    matrix,
    numeric,
    edges,
    edge_start,
    bins,
    mask_start,
    masks,
    narrowing,
    leaf_start,
    leaf_value,
    out,
):  # pragma: no cover - compiled; the tests compare it with Booster.predict
    trees = masks.shape[1]
    alive = np.empty(trees, dtype=masks.dtype)
    everything = np.full(trees, ~masks.dtype.type(0), dtype=masks.dtype)
    for row in range(matrix.shape[0]):
        alive[:] = everything
        for f in range(matrix.shape[1]):
            value = np.float64(matrix[row, f])
            other = bins[f] - 1  # categorical: every other value; numeric: NaN
            if numeric[f]:
                if np.isnan(value):
                    b = other
                else:  # how many edges are below the value
                    low, high = edge_start[f], edge_start[f + 1]
                    if high - low <= _SCAN:  # no branch to mispredict
                        b = 0
                        for edge in range(low, high):
                            b += edges[edge] < value
                    else:
                        while low < high:
                            mid = (low + high) >> 1
                            if edges[mid] < value:
                                low = mid + 1
                            else:
                                high = mid
                        b = low - edge_start[f]
            elif np.isnan(value) or value <= -1.0 or value >= other:
                b = other
            else:
                b = int(value)
            at = mask_start[f] + b
            if narrowing[at]:  # a bin every split sends left rules out no leaf
                for t in range(trees):
                    alive[t] &= masks[at, t]
        total = 0.0
        for t in range(trees):  # each tree's lowest leaf standing
            total += leaf_value[leaf_start[t] + trailing_zeros(alive[t])]
        out[row] = total
