"""Grid + chi-square gating against a brute-force reference built from the model matrices."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.geo import LocalFrame, aer_to_enu, enu_to_aer
from fusion.kernels import gating
from fusion.kernels.gating import MODE_BEARING, MODE_POLAR, MODE_POS, ident_words
from fusion.kernels.packed import pack
from fusion.models import cv_F, cv_Q
from tests.packedkit import symmetric, via_packed

gate = via_packed(gating.gate, 3)  # the kernel reads packed covariances; this takes (n, 6, 6)


def _random_tracks(rng, n, extent_m):
    x = np.zeros((n, 6))
    x[:, :2] = rng.uniform(-extent_m, extent_m, size=(n, 2))
    x[:, 2] = rng.uniform(0, 3000, size=n)
    x[:, 3:5] = rng.normal(0, 50, size=(n, 2))
    x[:, 5] = rng.normal(0, 2, size=n)
    A = rng.normal(size=(n, 6, 6))
    scale = np.array([80, 80, 50, 5, 5, 2.0])
    P = np.einsum("nij,nkj->nik", A, A) * scale[None, :, None] * scale[None, None, :] / 6.0
    P += np.eye(6)[None] * scale[None, :, None] ** 2 * 0.5
    t = rng.uniform(0.0, 5.0, size=n)
    return x, symmetric(P), t


def _brute(mode, rows, x, P, t, q_h, q_v, gate2, z, R, det_t, M, c, tid, did):
    """Every pair, with the full 6-D CV prediction and numpy linear algebra."""
    pairs = {}
    for i, ti in enumerate(rows):
        for j in range(z.shape[0]):
            if tid[ti] and did[j] and tid[ti] != did[j]:
                continue
            dt = det_t[j] - t[ti]
            F = cv_F(dt)
            xp = F @ x[ti]
            Pp = F @ P[ti] @ F.T + cv_Q(dt, q_h[i], q_v[i])
            if mode == MODE_POS:
                H = np.hstack([np.eye(3), np.zeros((3, 3))])
                y = z[j] - xp[:3]
            else:
                ps = M @ xp[:3] + c
                aer = enu_to_aer(ps[None])[0]
                # Central finite-difference Jacobian: independent of the kernel's exact one.
                Jn = np.zeros((3, 3))
                for k in range(3):
                    d = np.zeros(3)
                    d[k] = 1e-3
                    Jn[:, k] = (
                        enu_to_aer((M @ (xp[:3] + d) + c)[None])[0]
                        - enu_to_aer((M @ (xp[:3] - d) + c)[None])[0]
                    ) / 2e-3
                sel = [0, 1, 2] if mode == MODE_POLAR else [1, 2][: z.shape[1]]
                H = np.hstack([Jn[sel], np.zeros((len(sel), 3))])
                y = z[j] - aer[sel]
                k_az = sel.index(1)
                y[k_az] = (y[k_az] + np.pi) % (2 * np.pi) - np.pi
            S = H @ Pp @ H.T + R[j]
            d2 = float(y @ np.linalg.solve(S, y))
            if d2 <= gate2[i]:
                pairs[(i, j)] = d2
    return pairs


def _as_dict(pt, pd, d2):
    return {(int(a), int(b)): float(c) for a, b, c in zip(pt, pd, d2, strict=True)}


@pytest.mark.parametrize("seed", range(8))
def test_pos_gate_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_t, n_d = 60, 80
    x, P, t = _random_tracks(rng, n_t, 3000.0)
    rows = np.sort(rng.choice(n_t, size=45, replace=False)).astype(np.int64)
    det_t = rng.uniform(5.0, 8.0, size=n_d)
    # Half the detections near tracks, half anywhere.
    src = rng.integers(0, n_t, size=n_d)
    z = x[src, :3] + x[src, 3:] * (det_t - t[src])[:, None] + rng.normal(0, 150, size=(n_d, 3))
    z[::2, :2] = rng.uniform(-3000, 3000, size=(n_d // 2 + n_d % 2, 2))
    sig = rng.uniform(20, 100, size=(n_d, 3))
    R = np.zeros((n_d, 3, 3))
    R[:, [0, 1, 2], [0, 1, 2]] = sig**2
    q_h = rng.uniform(0.1, 5, size=rows.shape[0])
    q_v = rng.uniform(0.01, 1, size=rows.shape[0])
    gate2 = np.full(rows.shape[0], 16.27)
    ident = np.zeros(n_t, "S24")
    ident[:10] = [f"icao:{k:06x}".encode() for k in range(10)]
    dident = np.zeros(n_d, "S24")
    dident[:20] = [f"icao:{k % 12:06x}".encode() for k in range(20)]
    tr = sig.__pow__(2).sum(axis=1)
    eye, zero = np.eye(3), np.zeros(3)
    for cell in (10.0, 150.0, 1000.0, 50_000.0):  # 10 m: too many cells, sorted keys
        pt, pd, d2 = gate(
            MODE_POS,
            rows,
            x,
            P,
            t,
            q_h,
            q_v,
            gate2,
            z,
            R,
            det_t,
            z,
            tr,
            eye,
            zero,
            ident_words(ident),
            ident_words(dident),
            cell,
        )
        got = _as_dict(pt, pd, d2)
        ref = _brute(
            MODE_POS, rows, x, P, t, q_h, q_v, gate2, z, R, det_t, eye, zero, ident, dident
        )
        assert set(got) == set(ref), f"cell {cell}"
        assert len(ref) > 10
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-9)


def test_identity_excludes_other_identity_but_not_anonymous():
    x = np.zeros((2, 6))
    P = np.tile(np.eye(6) * 100.0, (2, 1, 1))
    t = np.zeros(2)
    z = np.zeros((2, 3))
    R = np.tile(np.eye(3) * 100.0, (2, 1, 1))
    tid = np.array([b"mmsi:1", b""], "S24")
    did = np.array([b"mmsi:2", b""], "S24")
    pt, pd, _ = gate(
        MODE_POS,
        np.arange(2),
        x,
        P,
        t,
        np.ones(2),
        np.ones(2),
        np.full(2, 16.0),
        z,
        R,
        np.zeros(2),
        z,
        np.full(2, 300.0),
        np.eye(3),
        np.zeros(3),
        ident_words(tid),
        ident_words(did),
        100.0,
    )
    assert set(zip(pt.tolist(), pd.tolist(), strict=True)) == {(0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("mode,m", [(MODE_POLAR, 3), (MODE_BEARING, 1), (MODE_BEARING, 2)])
def test_polar_and_bearing_gate_match_brute_force(mode, m):
    rng = np.random.default_rng(42 + m + mode)
    frame = LocalFrame(46.5, 30.7, 0.0)
    M, c = frame.sensor_transform(np.array([46.6, 30.9, 50.0]))
    n_t, n_d = 30, 25
    x, P, t = _random_tracks(rng, n_t, 20_000.0)
    x[:, 2] = rng.uniform(500, 3000, size=n_t)
    rows = np.arange(n_t, dtype=np.int64)
    det_t = np.full(n_d, 6.0)
    src = rng.integers(0, n_t, size=n_d)
    truth = x[src, :3] + x[src, 3:] * (det_t - t[src])[:, None]
    aer = enu_to_aer(truth @ M.T + c)
    sig = np.array([30.0, 0.01, 0.01])
    aer = aer + rng.normal(0, 1, size=aer.shape) * sig
    aer[:, 1] %= 2 * np.pi
    sel = [0, 1, 2] if mode == MODE_POLAR else [1, 2][:m]
    z = aer[:, sel]
    R = np.tile(np.diag(sig[sel] ** 2), (n_d, 1, 1))
    pos = (aer_to_enu(aer) - c) @ M  # theatre position: M.T @ (p_s - c)
    tr = np.full(n_d, sig[0] ** 2 + 2 * (np.linalg.norm(truth, axis=1) * 0.01) ** 2)
    q = np.ones(n_t)
    gate2 = np.full(n_t, 16.27 if mode == MODE_POLAR else 13.8)
    none_t, none_d = np.zeros(n_t, "S24"), np.zeros(n_d, "S24")
    pt, pd, d2 = gate(
        mode,
        rows,
        x,
        P,
        t,
        q,
        q,
        gate2,
        z,
        R,
        det_t,
        pos,
        tr,
        M,
        c,
        ident_words(none_t),
        ident_words(none_d),
        500.0,
    )
    got = _as_dict(pt, pd, d2)
    ref = _brute(mode, rows, x, P, t, q, q, gate2, z, R, det_t, M, c, none_t, none_d)
    assert len(ref) >= 5
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-6)


def _edge_detections(rng, x, P, t, rows, q_h, q_v, gate2, det_t, R):
    """For each track, detections on its gate's extreme points along east and north (where
    a per-axis bound is tight), just inside and just outside the gate, at the given times."""
    z, tt, RR = [], [], []
    for i, ti in enumerate(rows):
        for _ in range(2):
            k = int(rng.integers(0, det_t.shape[0]))
            dt = det_t[k] - t[ti]
            F = cv_F(dt)
            xp = F @ x[ti]
            S = (F @ P[ti] @ F.T + cv_Q(dt, q_h[i], q_v[i]))[:3, :3] + R[k]
            for a in (0, 1):
                for scale in (1.0 - 1e-7, 1.0 + 1e-7):
                    d2 = gate2[i] * scale
                    y = np.sqrt(d2) * S[:, a] / np.sqrt(S[a, a]) * rng.choice([-1.0, 1.0])
                    z.append(xp[:3] + y)
                    tt.append(det_t[k])
                    RR.append(R[k])
    return np.array(z), np.array(tt), np.array(RR)


@pytest.mark.parametrize("seed", range(6))
def test_pos_gate_bounds_keep_every_pair_of_the_full_test(seed):
    """`gate_pairs_pos` skips candidates by exact bounds (a per-axis search box, a per-axis
    test before the Cholesky); `gate_pairs` computes every candidate's full distance. With
    wide new-track gates (100 m/s velocity sigma), detections of several times and
    covariances, and detections on each gate's extreme points along east and north just
    inside and just outside it: the same pairs, bit-identical distances."""
    rng = np.random.default_rng(1000 + seed)
    n_t, n_k = 40, 6
    x = np.zeros((n_t, 6))
    x[:, :2] = rng.uniform(-4000, 4000, size=(n_t, 2))
    x[:, 3:5] = rng.normal(0, 30, size=(n_t, 2))
    A = rng.normal(size=(n_t, 6, 6)) * 0.3
    scale = np.array([20.0, 20.0, 20.0, 100.0, 100.0, 20.0])
    P = np.einsum("nij,nkj->nik", A, A) + np.eye(6)[None]
    P = symmetric(P * scale[None, :, None] * scale[None, None, :])
    t = rng.uniform(0.0, 1.0, size=n_t)
    rows = np.sort(rng.choice(n_t, size=30, replace=False)).astype(np.int64)
    q_h = rng.uniform(0.5, 5, size=rows.shape[0])
    q_v = rng.uniform(0.01, 1, size=rows.shape[0])
    gate2 = rng.choice([11.34, 16.27], size=rows.shape[0])
    det_t = np.sort(rng.uniform(2.0, 2.0 if seed % 2 else 4.0, size=n_k))  # one time or a span
    B = rng.normal(size=(n_k, 3, 3))
    R_k = symmetric(np.einsum("nij,nkj->nik", B, B) * 100.0 + np.eye(3)[None] * 400.0)
    z, tt, R = _edge_detections(rng, x, P, t, rows, q_h, q_v, gate2, det_t, R_k)
    # Clutter anywhere too.
    n_c = 60
    k = rng.integers(0, n_k, size=n_c)
    z = np.vstack([z, np.c_[rng.uniform(-5000, 5000, size=(n_c, 2)), rng.normal(0, 30, n_c)]])
    tt = np.concatenate([tt, det_t[k]])
    R = np.concatenate([R, R_k[k]])
    n_d = z.shape[0]
    tr = np.trace(R, axis1=1, axis2=2).copy()
    Pp = pack(P)
    none_t, none_d = ident_words(np.zeros(n_t, "S24")), ident_words(np.zeros(n_d, "S24"))
    eye, zero = np.eye(3), np.zeros(3)
    cap = 20 * (n_t + n_d)
    zeros = np.zeros(rows.shape[0], np.int64)
    for cell in (150.0, 1000.0, 5000.0):
        outs = [np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap)]
        n = gating.gate_pairs_pos(
            rows, x, Pp, t, q_h, q_v, gate2, z, R, tt, none_t, none_d, cell, *outs
        )
        fast = _as_dict(*(o[:n] for o in outs))
        outs = [np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap)]
        n = gating.gate_pairs(
            MODE_POS, rows, x, Pp, t, zeros, zeros, np.zeros((0, 6)), np.zeros((0, 21)),
            np.zeros(0), q_h, q_v, gate2, z, R, tt, z, tr, eye, zero, none_t, none_d, cell,
            *outs,
        )  # fmt: skip
        full = _as_dict(*(o[:n] for o in outs))
        assert fast == full, f"cell {cell}"  # same pairs, bit-identical distances
        # The points just inside each gate are in it; those just outside are not.
        assert len(full) >= 2 * 2 * rows.shape[0]
