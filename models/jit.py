"""Numba for this project's compiled kernels, brought in without what they never use.

The first time a process compiles a kernel or loads one from Numba's cache, Numba sets up its
typing context, and two of the modules that imports look for optional libraries:
`numba.np.arraymath` imports SciPy's BLAS (with `scipy.linalg`) to learn whether `np.dot` and
its kin can be compiled, and `numba.core.typing.cffi_utils` imports cffi to type cffi functions.
Our kernels (the batch forest, the CSV row scanner) call neither, and a batch run imports SciPy
nowhere else, yet the two imports were 0.2 s of every `sal score` run's start. So those modules
are imported here with both libraries out of sight; Numba then records that it has no BLAS or
cffi support, which nothing of ours asks for. A process that already holds them (the service,
which imports LightGBM and so SciPy) loses nothing by it and is left as it is.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba

# The optional libraries, each with the module whose presence says it is already imported.
_OPTIONAL = {"scipy": "scipy.linalg.cython_blas", "cffi": "cffi"}


class _Unavailable(importlib.abc.MetaPathFinder):
    """Refuses `packages` to this thread's imports; another thread's imports find them as usual."""

    def __init__(self, packages: frozenset[str]) -> None:
        self.packages, self.thread = packages, threading.get_ident()

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.packages and threading.get_ident() == self.thread:
            raise ModuleNotFoundError(f"{name} is not needed by this project's kernels", name=name)


@contextmanager
def _without(packages: frozenset[str]) -> Iterator[None]:
    finder = _Unavailable(packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


with _without(frozenset(p for p, loaded in _OPTIONAL.items() if loaded not in sys.modules)):
    import numba.core.typing.cffi_utils
    import numba.np.arraymath

# A bit scan our kernels use (Numba's intrinsic: one instruction), imported after the above.
from numba.cpython.unsafe.numbers import trailing_zeros  # noqa: E402

njit = numba.njit
__all__ = ["njit", "trailing_zeros"]
