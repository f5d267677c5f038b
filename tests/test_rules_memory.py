"""PairMemory (fusion.rules.base): sorted codes and value columns kept across scans, checked
against a plain dict on seeded random puts, lookups and drops."""

from __future__ import annotations

import numpy as np

from fusion.rules.base import PairMemory


def test_pair_memory_matches_a_dict():
    rng = np.random.default_rng(5)
    mem = PairMemory({"a": 0.0, "n": np.int16(0), "f": False})
    ref: dict[int, tuple[float, int, bool]] = {}
    for _ in range(200):
        codes = rng.choice(np.arange(-50, 400, dtype=np.int64), rng.integers(0, 40), False)
        looked_up = mem.lookup(codes) if rng.random() < 0.5 else None
        found, vals = mem.get(codes)
        assert found.tolist() == [int(c) in ref for c in codes.tolist()]
        for c, a, n, f in zip(codes.tolist(), vals["a"], vals["n"], vals["f"], strict=True):
            assert (float(a), int(n), bool(f)) == ref.get(c, (0.0, 0, False))
        new = {"a": rng.normal(size=len(codes)), "n": rng.integers(0, 9, len(codes)).astype(
            np.int16), "f": rng.random(len(codes)) < 0.5}  # fmt: skip
        mem.put(codes, new, looked_up)
        for k, c in enumerate(codes.tolist()):
            ref[c] = (float(new["a"][k]), int(new["n"][k]), bool(new["f"][k]))
        if rng.random() < 0.2:
            keep = rng.random(len(mem)) < 0.7
            for c in mem.codes[~keep].tolist():
                del ref[c]
            mem.keep(keep)
        assert mem.codes.tolist() == sorted(ref)
        assert mem.cols["n"].dtype == np.int16 and mem.cols["f"].dtype == bool
        assert [float(x) for x in mem.cols["a"]] == [ref[c][0] for c in sorted(ref)]
