"""The one place that sets numba's compilation flags.

Every kernel in the project is decorated with ``njit`` from here, never with ``numba.njit``
directly, so caching, the GIL release and the floating-point mode are decided once.
Covariance arithmetic is order-sensitive, so ``fastmath`` stays off (no reassociation).
"""

from __future__ import annotations

import os

import numba

# cache=True writes compiled kernels under NUMBA_CACHE_DIR (the Makefile points it at the
# checkout), so a second run of the suite or the service does not compile again.
_FLAGS = {
    "cache": os.environ.get("FUSION_NUMBA_CACHE", "1") != "0",
    "nogil": True,
    "fastmath": False,
}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's flags; extra keyword arguments override them."""
    flags = {**_FLAGS, **kwargs}
    if args and callable(args[0]):
        return numba.njit(**flags)(args[0])
    return numba.njit(*args, **flags)
