"""Driving the batched kernels, which take packed covariances (`fusion.kernels.packed`), from
tests written with full (..., 6, 6) matrices: the references (filterpy, numpy) need full ones.

`via_packed(kernel, *positions)` is the kernel with the arguments at `positions` given as full
covariances: they are packed before the call and the kernel's result unpacked back into them,
in place. Packing is lossless only for exactly symmetric matrices: `symmetric` makes a test's
random covariance so (0.5 (A + A^T) is exactly symmetric in floating point).
"""

from __future__ import annotations

import numpy as np

from fusion.kernels.packed import pack, unpack


def symmetric(P: np.ndarray) -> np.ndarray:
    return 0.5 * (P + np.swapaxes(P, -1, -2))


def via_packed(kernel, *positions: int):
    def call(*args):
        args = list(args)
        full = {i: args[i] for i in positions}
        for i, P in full.items():
            if not np.array_equal(P, np.swapaxes(P, -1, -2)):
                raise AssertionError(f"argument {i} of {kernel.__name__} is not symmetric")
            args[i] = pack(P)
        out = kernel(*args)
        for i, P in full.items():
            P[...] = unpack(args[i])
        return out

    call.__name__ = kernel.__name__
    call.__doc__ = kernel.__doc__
    return call
