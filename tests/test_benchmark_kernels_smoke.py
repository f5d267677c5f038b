"""The kernel benchmark keeps calling the kernels with the layouts they take.

`make bench` is not part of `make test`, so a change of a kernel's array layout (the packed
covariances, say) could break `benchmarks.geo` unseen; this runs it on a few hundred tracks.
"""

from __future__ import annotations

from benchmarks.geo import bench_filters


def test_filter_kernel_benchmark_runs_on_the_current_layouts():
    out = bench_filters(200)
    assert out["tracks"] == 200
    for key in ("predict_tracks_per_s", "update_position_per_s", "imm3_predict_plus_update_per_s"):
        assert out[key] > 0.0
    assert out["peers"]["filterpy_loop"]["ratio"] > 0.0
