"""Motion models of the tracker: nearly-constant velocity and coordinated turn, and IMM model sets.

State is 6-D ``[e, n, u, ve, vn, vu]`` in metres and m/s in the theatre ENU frame.

- CV (nearly-constant velocity, continuous white-noise acceleration): per axis
  ``F = [[1, dt], [0, 1]]`` and ``Q = q * [[dt^3/3, dt^2/2], [dt^2/2, dt]]`` with the intensity
  ``q`` in m^2/s^3, ``q_h`` on east and north, ``q_v`` on up.
- CT (coordinated turn with a known turn rate ``omega`` in rad/s, counter-clockwise in the
  east-north plane when positive): the horizontal velocity rotates by ``omega * dt``; up is CV.
  With the turn rate fixed by the model the transition stays linear, so an IMM of
  CV + CT(+omega) + CT(-omega) is a bank of linear Kalman filters (checkable exactly against
  filterpy's ``IMMEstimator``). Q is the CV one: white acceleration noise around the turn.
- A model with ``omega == 0`` is CV, so "two CV noise levels" is the same machinery.

Plain numpy builders for Python callers and tests, ``@njit`` ``*_into`` builders for kernels.
This module owns model matrices only; it does not touch tracks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fusion.jit import njit

__all__ = [
    "STATE_DIM",
    "ImmModelSet",
    "cv_F",
    "cv_Q",
    "ct_F",
    "model_F",
    "cv_F_into",
    "cv_Q_into",
    "ct_F_into",
    "model_F_into",
    "cv_predict_into",
    "ct_predict_into",
]

STATE_DIM = 6

# Below this |omega * dt| the turn is indistinguishable from a straight line in double precision
# arithmetic of sin/cos; the CT matrix is replaced by its CV limit to avoid 0/0.
_TURN_EPS = 1e-12


@njit
def cv_F_into(dt_s: float, F: np.ndarray) -> None:
    """Write the CV transition for ``dt_s`` seconds into ``F`` (6, 6)."""
    for i in range(6):
        for j in range(6):
            F[i, j] = 0.0
        F[i, i] = 1.0
    for i in range(3):
        F[i, i + 3] = dt_s


@njit
def cv_Q_into(dt_s: float, q_h: float, q_v: float, Q: np.ndarray) -> None:
    """Write the CV process noise (continuous white acceleration) into ``Q`` (6, 6).

    ``q_h`` (east, north) and ``q_v`` (up) are intensities in m^2/s^3.
    """
    dt2 = dt_s * dt_s
    a = dt2 * dt_s / 3.0
    b = dt2 / 2.0
    for i in range(6):
        for j in range(6):
            Q[i, j] = 0.0
    for i in range(3):
        q = q_v if i == 2 else q_h
        Q[i, i] = q * a
        Q[i, i + 3] = q * b
        Q[i + 3, i] = q * b
        Q[i + 3, i + 3] = q * dt_s


@njit
def ct_F_into(dt_s: float, omega_rad_s: float, F: np.ndarray) -> None:
    """Write the coordinated-turn transition (turn rate ``omega_rad_s``) into ``F`` (6, 6).

    The horizontal velocity turns by ``omega * dt`` (counter-clockwise seen from above for a
    positive rate); the vertical channel is CV. Tiny rates fall back to exactly CV.
    """
    wt = omega_rad_s * dt_s
    if abs(wt) < _TURN_EPS:
        cv_F_into(dt_s, F)
        return
    s = math.sin(wt)
    c = math.cos(wt)
    for i in range(6):
        for j in range(6):
            F[i, j] = 0.0
    F[0, 0] = 1.0
    F[1, 1] = 1.0
    F[2, 2] = 1.0
    F[5, 5] = 1.0
    F[2, 5] = dt_s
    F[0, 3] = s / omega_rad_s
    F[0, 4] = -(1.0 - c) / omega_rad_s
    F[1, 3] = (1.0 - c) / omega_rad_s
    F[1, 4] = s / omega_rad_s
    F[3, 3] = c
    F[3, 4] = -s
    F[4, 3] = s
    F[4, 4] = c


@njit
def model_F_into(dt_s: float, omega_rad_s: float, F: np.ndarray) -> None:
    """CV when ``omega_rad_s == 0``, else CT: the transition of one IMM model."""
    if omega_rad_s == 0.0:
        cv_F_into(dt_s, F)
    else:
        ct_F_into(dt_s, omega_rad_s, F)


@njit
def cv_predict_into(x: np.ndarray, P: np.ndarray, dt_s: float, q_h: float, q_v: float) -> None:
    """Predict one state ``x`` (6,) and covariance ``P`` (6, 6) in place with CV.

    Uses the block structure of F instead of 6x6x6 products and allocates nothing. Only the
    upper triangle of ``P`` is read (P is kept exactly symmetric), and the result is mirrored,
    so it is exactly symmetric.
    """
    for i in range(3):
        x[i] += dt_s * x[i + 3]
    dt2 = dt_s * dt_s
    a = dt2 * dt_s / 3.0
    b = dt2 / 2.0
    # Position block first: it needs the old position-velocity block.
    for i in range(3):
        for j in range(i, 3):
            vv = P[i + 3, j + 3]
            P[i, j] = P[i, j] + dt_s * (P[j, i + 3] + P[i, j + 3]) + dt2 * vv
    # Position-velocity block (all of it: it is not symmetric by itself).
    for i in range(3):
        for j in range(3):
            lo = min(i, j) + 3
            hi = max(i, j) + 3
            P[i, j + 3] = P[i, j + 3] + dt_s * P[lo, hi]
    for k in range(3):
        q = q_v if k == 2 else q_h
        P[k, k] += q * a
        P[k, k + 3] += q * b
        P[k + 3, k + 3] += q * dt_s
    for i in range(6):
        for j in range(i):
            P[i, j] = P[j, i]


@njit
def ct_predict_into(
    x: np.ndarray,
    P: np.ndarray,
    dt_s: float,
    omega_rad_s: float,
    q_h: float,
    q_v: float,
    FP: np.ndarray,
) -> None:
    """Predict one state ``x`` (6,) and covariance ``P`` (6, 6) in place with CT(omega).

    ``FP`` (6, 6) is scratch. F has at most three non-zeros per row, so F P and (F P) F^T are
    written as row and column combinations; the upper triangle is computed and mirrored. Tiny
    turns (|omega dt| < 1e-12) are CV.
    """
    wt = omega_rad_s * dt_s
    if abs(wt) < _TURN_EPS:
        cv_predict_into(x, P, dt_s, q_h, q_v)
        return
    s = math.sin(wt)
    c = math.cos(wt)
    a = s / omega_rad_s
    b = (1.0 - c) / omega_rad_s
    # x = F x
    x0 = x[0] + a * x[3] - b * x[4]
    x1 = x[1] + b * x[3] + a * x[4]
    x2 = x[2] + dt_s * x[5]
    x3 = c * x[3] - s * x[4]
    x4 = s * x[3] + c * x[4]
    x[0] = x0
    x[1] = x1
    x[2] = x2
    x[3] = x3
    x[4] = x4
    # FP = F P, row combinations of P
    for j in range(6):
        p3 = P[3, j]
        p4 = P[4, j]
        FP[0, j] = P[0, j] + a * p3 - b * p4
        FP[1, j] = P[1, j] + b * p3 + a * p4
        FP[2, j] = P[2, j] + dt_s * P[5, j]
        FP[3, j] = c * p3 - s * p4
        FP[4, j] = s * p3 + c * p4
        FP[5, j] = P[5, j]
    # P = FP F^T, the same combinations on columns (upper triangle)
    for i in range(6):
        f3 = FP[i, 3]
        f4 = FP[i, 4]
        col0 = FP[i, 0] + a * f3 - b * f4
        col1 = FP[i, 1] + b * f3 + a * f4
        col2 = FP[i, 2] + dt_s * FP[i, 5]
        col3 = c * f3 - s * f4
        col4 = s * f3 + c * f4
        col5 = FP[i, 5]
        if i <= 0:
            P[i, 0] = col0
        if i <= 1:
            P[i, 1] = col1
        if i <= 2:
            P[i, 2] = col2
        if i <= 3:
            P[i, 3] = col3
        if i <= 4:
            P[i, 4] = col4
        P[i, 5] = col5
    dt2 = dt_s * dt_s
    qa = dt2 * dt_s / 3.0
    qb = dt2 / 2.0
    for k in range(3):
        q = q_v if k == 2 else q_h
        P[k, k] += q * qa
        P[k, k + 3] += q * qb
        P[k + 3, k + 3] += q * dt_s
    for i in range(6):
        for j in range(i):
            P[i, j] = P[j, i]


def cv_F(dt_s: float) -> np.ndarray:
    """CV transition (6, 6) for ``dt_s`` seconds."""
    F = np.empty((6, 6))
    cv_F_into(float(dt_s), F)
    return F


def cv_Q(dt_s: float, q_h: float, q_v: float) -> np.ndarray:
    """CV process noise (6, 6); ``q_h``, ``q_v`` in m^2/s^3 (horizontal, vertical)."""
    Q = np.empty((6, 6))
    cv_Q_into(float(dt_s), float(q_h), float(q_v), Q)
    return Q


def ct_F(dt_s: float, omega_rad_s: float) -> np.ndarray:
    """Coordinated-turn transition (6, 6) with turn rate ``omega_rad_s`` (CCW positive)."""
    F = np.empty((6, 6))
    ct_F_into(float(dt_s), float(omega_rad_s), F)
    return F


def model_F(dt_s: float, omega_rad_s: float) -> np.ndarray:
    """Transition (6, 6) of a model: CV if ``omega_rad_s == 0`` else CT."""
    F = np.empty((6, 6))
    model_F_into(float(dt_s), float(omega_rad_s), F)
    return F


@dataclass(frozen=True)
class ImmModelSet:
    """The models of an IMM as arrays the kernels take directly.

    - ``omega_rad_s`` (r,): turn rate of each model, 0 for CV.
    - ``q_h``, ``q_v`` (r,): process noise intensities in m^2/s^3.
    - ``transition`` (r, r): ``transition[i, j]`` = P(model j next | model i now); rows sum to 1.
    - ``mu0`` (r,): mode probabilities given to a new track.
    """

    omega_rad_s: np.ndarray
    q_h: np.ndarray
    q_v: np.ndarray
    transition: np.ndarray
    mu0: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        omega = np.ascontiguousarray(self.omega_rad_s, dtype=np.float64).reshape(-1)
        r = omega.shape[0]
        if r < 1:
            raise ValueError("ImmModelSet: at least one model")
        q_h = np.ascontiguousarray(np.broadcast_to(self.q_h, (r,)), dtype=np.float64)
        q_v = np.ascontiguousarray(np.broadcast_to(self.q_v, (r,)), dtype=np.float64)
        trans = np.ascontiguousarray(self.transition, dtype=np.float64)
        if trans.shape != (r, r):
            raise ValueError(f"ImmModelSet: transition must be ({r}, {r}), got {trans.shape}")
        if (trans < 0).any() or np.abs(trans.sum(axis=1) - 1.0).max() > 1e-9:
            raise ValueError("ImmModelSet: transition rows must be probabilities summing to 1")
        if (q_h < 0).any() or (q_v < 0).any():
            raise ValueError("ImmModelSet: negative process noise")
        mu0 = np.full(r, 1.0 / r) if self.mu0 is None else np.asarray(self.mu0, np.float64)
        if mu0.shape != (r,) or (mu0 < 0).any() or abs(mu0.sum() - 1.0) > 1e-9:
            raise ValueError("ImmModelSet: mu0 must be r probabilities summing to 1")
        for name, value in (
            ("omega_rad_s", omega),
            ("q_h", q_h),
            ("q_v", q_v),
            ("transition", trans),
            ("mu0", np.ascontiguousarray(mu0)),
        ):
            if not np.isfinite(value).all():
                raise ValueError(f"ImmModelSet: non-finite {name}")
            object.__setattr__(self, name, value)

    @property
    def r(self) -> int:
        """Number of models."""
        return int(self.omega_rad_s.shape[0])

    @classmethod
    def cv_ct(
        cls,
        omega_rad_s: float = math.radians(3.0),
        q_h: float = 1.0,
        q_v: float = 0.1,
        q_h_turn: float | None = None,
        p_stay: float = 0.95,
    ) -> ImmModelSet:
        """CV + CT(+omega) + CT(-omega): the default for manoeuvring air targets.

        ``p_stay`` is the probability of keeping the model from one update to the next; the
        rest is shared equally among the other models.
        """
        r = 3
        off = (1.0 - p_stay) / (r - 1)
        trans = np.full((r, r), off)
        np.fill_diagonal(trans, p_stay)
        qt = q_h if q_h_turn is None else q_h_turn
        return cls(
            omega_rad_s=np.array([0.0, omega_rad_s, -omega_rad_s]),
            q_h=np.array([q_h, qt, qt]),
            q_v=np.array([q_v, q_v, q_v]),
            transition=trans,
            mu0=np.array([0.8, 0.1, 0.1]),
        )

    @classmethod
    def two_cv(
        cls, q_low: float = 0.1, q_high: float = 50.0, q_v: float = 0.1, p_stay: float = 0.95
    ) -> ImmModelSet:
        """Two CV models with a quiet and a manoeuvring noise level."""
        trans = np.array([[p_stay, 1.0 - p_stay], [1.0 - p_stay, p_stay]])
        return cls(
            omega_rad_s=np.zeros(2),
            q_h=np.array([q_low, q_high]),
            q_v=np.array([q_v, q_v]),
            transition=trans,
            mu0=np.array([0.9, 0.1]),
        )
