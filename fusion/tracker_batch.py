"""A sensor batch in the tracker's terms: theatre-frame arrays, identities, classes, kinds.

This module owns step 1 of `Tracker.step`: turning one `Detections` batch (WGS84 positions
with local-ENU covariances, or polar/bearing measurements from a site) into the arrays the
kernels read, in the theatre ENU frame of a `fusion.geo.LocalFrame`. It does not touch tracks.

- `pos`: z (lat_deg, lon_deg, alt_m) -> theatre ENU; each R (local ENU at the detection) is
  rotated into the theatre frame, and so are a reported velocity and its covariance; with a
  velocity the measurement is position + velocity (6-D).
- `polar`: z stays (range_m, az_rad, el_rad) for the EKF update; the converted position and
  its covariance (through the exact inverse Jacobian) serve the gating grid and new tracks.
- `bearing`: z stays as measured; there is no position (a bearing does not locate a target).

Of several reports of one cooperative identity in a batch only the latest is usable (ties:
the last in the batch): one track takes at most one detection per scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.geo import LocalFrame, aer_jacobian, aer_to_enu
from fusion.kernels.extended import MEAS_BEARING, MEAS_POLAR, MEAS_POS, MEAS_POS_VEL
from fusion.kernels.frames import congruence3, geodetic_batch_into
from fusion.messages import CLS_UNKNOWN, KIND_POLAR, KIND_POS, Detections
from fusion.tracks import (
    KIND_BIT_BEARING,
    KIND_BIT_POLAR,
    KIND_BIT_POS_COOP,
    KIND_BIT_POS_NONCOOP,
)

# Reported velocity without a covariance: taken with this standard deviation per axis.
DEFAULT_VEL_SIGMA_MPS = 5.0


@dataclass
class TheatreBatch:
    meas: int  # fusion.kernels.extended.MEAS_* of the update
    z: np.ndarray  # (n, m) measurement as the update takes it
    R: np.ndarray  # (n, m, m)
    pos: np.ndarray  # (n, 3) theatre ENU position (zeros for bearings)
    R_pos: np.ndarray  # (n, 3, 3) its covariance
    det_tr: np.ndarray  # (n,) trace of R_pos, m^2
    vel: np.ndarray | None  # (n, 3) theatre ENU reported velocity
    vel_R: np.ndarray | None  # (n, 3, 3)
    ident: np.ndarray | None  # (n,) S24, None when the batch has none
    has_id: np.ndarray  # (n,) bool
    cooperative: bool  # some detection carries an identity
    cls: np.ndarray  # (n,) uint8 class codes
    kind_bits: np.ndarray  # (n,) uint8 fusion.tracks.KIND_BIT_*
    usable: np.ndarray  # (n,) bool: not superseded by a later report of its identity
    superseded: int


def theatre_batch(
    batch: Detections,
    t: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    frame: LocalFrame,
    M: np.ndarray,
    c: np.ndarray,
    n_classes: int,
) -> TheatreBatch:
    """Convert a checked batch (t (n,), z (n, m), R (n, m, m) float64, all finite); M, c is
    the sensor transform of its site (identity and zeros without one)."""
    n = t.shape[0]
    vel = vel_R = None
    if batch.kind == KIND_POS:
        meas = MEAS_POS
        if z.shape[1] != 3:
            raise ValueError(f"llh: expected shape (n, 3) or (3,), got {z.shape}")
        pos = np.empty((n, 3))
        Rt = np.empty((n, 3, 3))  # local ENU -> theatre
        R_pos = np.empty((n, 3, 3))
        det_tr = np.empty(n)
        if geodetic_batch_into(z, R, frame.ecef0, frame.R0, pos, Rt, R_pos, det_tr):
            raise ValueError("llh: latitude outside [-90, 90] degrees")
        z_meas, R_meas = pos, R_pos
        if batch.vel is not None:
            meas = MEAS_POS_VEL
            vel = np.einsum("nij,nj->ni", Rt, np.asarray(batch.vel, dtype=np.float64))
            if batch.vel_R is not None:
                vel_R = congruence3(Rt, batch.vel_R)[0]
            else:
                vel_R = np.tile(np.eye(3) * DEFAULT_VEL_SIGMA_MPS**2, (n, 1, 1))
            z_meas = np.concatenate([pos, vel], axis=1)
            R_meas = np.zeros((n, 6, 6))
            R_meas[:, :3, :3] = R_pos
            R_meas[:, 3:, 3:] = vel_R
    elif batch.kind == KIND_POLAR:
        meas = MEAS_POLAR
        q = aer_to_enu(z)  # sensor-frame ENU
        pos = (q - c) @ M  # theatre: M.T @ (q - c)
        G = M.T @ np.linalg.inv(aer_jacobian(q))  # d theatre / d (range, az, el)
        R_pos, det_tr = congruence3(G, R)
        z_meas, R_meas = z, R
    else:
        meas = MEAS_BEARING
        pos = np.zeros((n, 3))
        R_pos = np.zeros((n, 3, 3))
        det_tr = np.zeros(n)
        z_meas, R_meas = z, R
    if batch.ident is None:
        ident = None
        has_id = np.zeros(n, dtype=np.bool_)
    else:
        ident = np.ascontiguousarray(batch.ident, dtype="S24")
        if ident.shape != (n,):
            raise ValueError(f"ident has shape {ident.shape}, not ({n},)")
        has_id = ident != b""
    if batch.cls is None:
        cls = np.empty(n, np.uint8)  # empty + fill: cheaper than np.full for small n
        cls.fill(CLS_UNKNOWN)
    else:
        cls = np.ascontiguousarray(batch.cls, dtype=np.uint8)
        if cls.shape != (n,) or (n and int(cls.max()) >= n_classes):
            raise ValueError("detection class codes: wrong shape or out of range")
    cooperative = ident is not None and bool(has_id.any())
    if batch.kind == KIND_POS:
        if cooperative:
            kind_bits = np.where(has_id, KIND_BIT_POS_COOP, KIND_BIT_POS_NONCOOP)
        else:
            kind_bits = np.empty(n, np.uint8)
            kind_bits.fill(KIND_BIT_POS_NONCOOP)
    elif batch.kind == KIND_POLAR:
        kind_bits = np.full(n, KIND_BIT_POLAR)
    else:
        kind_bits = np.full(n, KIND_BIT_BEARING)
    usable = np.empty(n, dtype=np.bool_)
    usable.fill(True)
    superseded = 0
    if cooperative:
        idx = np.flatnonzero(has_id)
        order = idx[np.lexsort((t[idx], ident[idx]))]
        last = np.ones(order.shape[0], dtype=np.bool_)
        last[:-1] = ident[order[1:]] != ident[order[:-1]]
        usable[order[~last]] = False
        superseded = int((~last).sum())
    return TheatreBatch(
        meas=meas,
        z=z_meas,
        R=R_meas,
        pos=pos,
        R_pos=R_pos,
        det_tr=det_tr,
        vel=vel,
        vel_R=vel_R,
        ident=ident,
        has_id=has_id,
        cooperative=cooperative,
        cls=cls,
        kind_bits=np.asarray(kind_bits, dtype=np.uint8),
        usable=usable,
        superseded=superseded,
    )
