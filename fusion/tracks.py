"""TrackTable: the structure-of-arrays state of every track, and slot allocation.

This module owns the layout of the tracker's memory: one preallocated array per attribute,
indexed by slot, growing by doubling, with no Python object per track. It knows nothing of
sensors, gating or filtering: `fusion.tracker` and the kernels read and write these arrays.

Per slot (state at time `t_s`, the time of the track's last update; theatre ENU frame):

    id        int64      stable track id (never reused; 0 for a free slot)
    x         (6,) f8    e, n, u, ve, vn, vu                                  m, m/s
    P         (21,) f8   covariance of x, packed: its upper triangle row by row
                         (`fusion.kernels.packed`; `covariance(slots)` gives (k, 6, 6))
    t_s       f8         time of x and P (last update)                         s
    t0_s      f8         time of the first detection                           s
    status    u1         index into messages.TRACK_STATUS_NAMES (0 free, 1 tentative,
                         2 confirmed, 3 coasting)
    cls       u1         messages.CLS_* class code
    hist      u2         M-of-N history: bit 0 is the latest scan in coverage, 1 = hit
    nscan     u1         scans in coverage since birth, saturating at 255
    misses    u1         consecutive misses inside coverage
    hits      i4         updates so far
    ident     S24        cooperative identity, b"" when none
    sensors   u8         bit mask over the tracker's sensor registry (bit = index % 64)
    kinds     u1         bit mask of measurement kinds: 1 pos cooperative (with identity),
                         2 polar (radar), 4 bearing, 8 pos non-cooperative
    imm_slot  i4         row in the IMM side table, -1 when the track runs no IMM

IMM side table (only for tracks of a class with `imm=True`, r models): `imm_mu (K, r)` mode
probabilities, `imm_x (K, r, 6)` and `imm_P (K, r, 21)` (packed) the mode-conditioned states;
x and P above then hold the combined (moment-matched) estimate.

Memory: every covariance is symmetric (the kernels keep it exactly so), and is stored as its
21 upper-triangle values, 168 bytes instead of 288, without loss. The per-slot arrays take
MAIN_BYTES_PER_SLOT = 8+48+168+8+8+1+1+2+1+1+4+24+8+1+4 = 287 bytes; an IMM track also uses
r * (8 + 48 + 168) bytes in the side table (672 B for the default three models, 448 B for
two), plus one byte for the side-table row's in-use flag. A non-IMM track therefore costs
287 B (574 B at worst just after a doubling); an IMM track 960 B with three models (the side
table also grows by doubling). Before the packed layout: 407 B and 1,440 B. `nbytes()`
reports the exact allocation (`python -m benchmarks.tracker` prints both figures).

Snapshots (`to_arrays` / `from_arrays`) carry full (n, 6, 6) covariances, the layout of the
picture and of earlier versions, so a snapshot written before the packed layout restores
unchanged.
"""

from __future__ import annotations

import numpy as np

from fusion.kernels.lifecycle import free_slots
from fusion.kernels.packed import N_PACKED, pack, unpack
from fusion.messages import IDENT_DTYPE

FREE, TENTATIVE, CONFIRMED, COASTING = 0, 1, 2, 3

KIND_BIT_POS_COOP = 1
KIND_BIT_POLAR = 2
KIND_BIT_BEARING = 4
KIND_BIT_POS_NONCOOP = 8

MAIN_BYTES_PER_SLOT = 8 + 48 + 168 + 8 + 8 + 1 + 1 + 2 + 1 + 1 + 4 + 24 + 8 + 1 + 4
IMM_BYTES_PER_MODE = 8 + 48 + 168

# (name, trailing shape, dtype) of every per-slot array, in snapshot order.
_FIELDS: tuple[tuple[str, tuple[int, ...], object], ...] = (
    ("id", (), np.int64),
    ("x", (6,), np.float64),
    ("P", (N_PACKED,), np.float64),
    ("t_s", (), np.float64),
    ("t0_s", (), np.float64),
    ("status", (), np.uint8),
    ("cls", (), np.uint8),
    ("hist", (), np.uint16),
    ("nscan", (), np.uint8),
    ("misses", (), np.uint8),
    ("hits", (), np.int32),
    ("ident", (), IDENT_DTYPE),
    ("sensors", (), np.uint64),
    ("kinds", (), np.uint8),
    ("imm_slot", (), np.int32),
)
FIELD_NAMES = tuple(f[0] for f in _FIELDS)


class TrackTable:
    """Slots of tracks in parallel arrays; free slots are reused lowest first.

    `alloc(k)` returns k slot indices (ascending, deterministic), `free(slots)` releases them.
    Ids come from a counter that survives snapshots (`next_id`), so ids are never reused.
    """

    def __init__(self, capacity: int = 1024, imm_modes: int = 3) -> None:
        capacity = max(int(capacity), 1)
        for name, shape, dtype in _FIELDS:
            setattr(self, name, np.zeros((capacity, *shape), dtype=dtype))
        self.imm_slot[:] = -1
        self.imm_modes = int(imm_modes)
        r = self.imm_modes
        self.imm_mu = np.zeros((0, r))
        self.imm_x = np.zeros((0, r, 6))
        self.imm_P = np.zeros((0, r, N_PACKED))
        self.imm_used = np.zeros(0, dtype=np.bool_)
        self.next_id = 1
        self.n_active = 0

    # -- sizes ------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return int(self.id.shape[0])

    def active_slots(self) -> np.ndarray:
        """Slots in use, ascending."""
        return np.flatnonzero(self.status != FREE)

    def nbytes(self) -> int:
        """Bytes held by all the table's arrays."""
        total = sum(getattr(self, name).nbytes for name in FIELD_NAMES)
        imm = self.imm_mu.nbytes + self.imm_x.nbytes + self.imm_P.nbytes + self.imm_used.nbytes
        return int(total + imm)

    # -- allocation -------------------------------------------------------------------------
    def grow(self, needed: int) -> None:
        """Capacity for at least `needed` slots (doubling); contents and free slots kept."""
        self._grow(needed)

    def _grow(self, needed: int) -> None:
        cap = self.capacity
        new_cap = cap
        while new_cap < needed:
            new_cap *= 2
        if new_cap == cap:
            return
        for name, shape, dtype in _FIELDS:
            old = getattr(self, name)
            new = np.zeros((new_cap, *shape), dtype=dtype)
            new[:cap] = old
            setattr(self, name, new)
        self.imm_slot[cap:] = -1

    def alloc(self, k: int) -> np.ndarray:
        """k free slots (lowest first), marked tentative with fresh ids; grows as needed."""
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        free = np.flatnonzero(self.status == FREE)
        if free.shape[0] < k:
            self._grow(self.n_active + k)
            free = np.flatnonzero(self.status == FREE)
        slots = free[:k].astype(np.int64)
        self.id[slots] = np.arange(self.next_id, self.next_id + k, dtype=np.int64)
        self.next_id += k
        self.status[slots] = TENTATIVE
        self.n_active += k
        return slots

    def alloc_imm(self, slots: np.ndarray) -> None:
        """Give each of `slots` a row in the IMM side table (grown by doubling)."""
        k = int(slots.shape[0])
        if k == 0:
            return
        free = np.flatnonzero(~self.imm_used)
        if free.shape[0] < k:
            cap = self.imm_x.shape[0]
            new_cap = max(cap, 16)
            while new_cap - int(self.imm_used.sum()) < k:
                new_cap *= 2
            r = self.imm_modes
            imm_mu = np.zeros((new_cap, r))
            imm_x = np.zeros((new_cap, r, 6))
            imm_P = np.zeros((new_cap, r, N_PACKED))
            used = np.zeros(new_cap, dtype=np.bool_)
            imm_mu[:cap], imm_x[:cap], imm_P[:cap] = self.imm_mu, self.imm_x, self.imm_P
            used[:cap] = self.imm_used
            self.imm_mu, self.imm_x, self.imm_P, self.imm_used = imm_mu, imm_x, imm_P, used
            free = np.flatnonzero(~self.imm_used)
        rows = free[:k].astype(np.int32)
        self.imm_used[rows] = True
        self.imm_slot[slots] = rows

    def pack(self, order: np.ndarray) -> None:
        """Move the active tracks listed in `order` (every active slot, once) to slots
        0..n-1 in that order; the slots above become free. Ids and contents are unchanged;
        the IMM side table is untouched (its rows follow `imm_slot`)."""
        order = np.asarray(order, dtype=np.int64)
        n = order.shape[0]
        if n != self.n_active:
            raise ValueError(f"pack needs every active slot once: {n} != {self.n_active}")
        for name in FIELD_NAMES:
            arr = getattr(self, name)
            moved = arr[order]
            arr[n:] = b"" if name == "ident" else 0
            arr[:n] = moved
        self.imm_slot[n:] = -1

    def free(self, slots: np.ndarray) -> None:
        """Release slots: status free, id 0, identity cleared, IMM rows returned."""
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        # One kernel instead of an indexed assignment per field (this runs on every step of the
        # general path; empty slots included, so that the kernel is loaded at its first step).
        free_slots(
            slots, self.id, self.x, self.P, self.t_s, self.t0_s, self.status, self.cls,
            self.hist, self.nscan, self.misses, self.hits,
            self.ident.view(np.uint64).reshape(self.ident.shape[0], 3), self.sensors,
            self.kinds, self.imm_slot, self.imm_used,
        )  # fmt: skip
        self.n_active -= int(slots.shape[0])

    # -- covariances ------------------------------------------------------------------------
    def covariance(self, slots: np.ndarray) -> np.ndarray:
        """Full covariances (k, 6, 6) of the tracks at `slots` (a new array)."""
        return unpack(self.P[np.asarray(slots, dtype=np.int64)])

    def set_covariance(self, slots: np.ndarray, P: np.ndarray) -> None:
        """Store full covariances P (k, 6, 6) (each exactly symmetric) at `slots`."""
        self.P[np.asarray(slots, dtype=np.int64)] = pack(P, check_symmetric=True)

    # -- snapshots --------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray | int]:
        """Plain arrays of the active tracks (copies), plus the id counter; covariances full
        (n, 6, 6) and (n, r, 6, 6)."""
        slots = self.active_slots()
        out: dict[str, np.ndarray | int] = {
            name: getattr(self, name)[slots].copy() for name in FIELD_NAMES
        }
        out["P"] = unpack(self.P[slots])
        rows = self.imm_slot[slots]
        has = rows >= 0
        n, r = slots.shape[0], self.imm_modes
        imm_mu, imm_x, imm_P = np.zeros((n, r)), np.zeros((n, r, 6)), np.zeros((n, r, 6, 6))
        imm_mu[has] = self.imm_mu[rows[has]]
        imm_x[has] = self.imm_x[rows[has]]
        imm_P[has] = unpack(self.imm_P[rows[has]])
        out["imm_mu"], out["imm_x"], out["imm_P"] = imm_mu, imm_x, imm_P
        out["next_id"] = int(self.next_id)
        return out

    @staticmethod
    def from_arrays(d: dict, capacity: int = 1024) -> TrackTable:
        """Rebuild a table from `to_arrays` output; slots are packed from 0 in the saved order.

        A covariance that is not exactly symmetric raises ValueError (the packed layout keeps
        one triangle)."""
        n = int(np.asarray(d["id"]).shape[0])
        r = int(np.asarray(d["imm_mu"]).shape[1]) if n else 3
        table = TrackTable(max(capacity, n), imm_modes=r)
        for name, shape, dtype in _FIELDS:
            arr = np.asarray(d[name], dtype=dtype)
            if name == "P":
                if arr.shape != (n, 6, 6):
                    raise ValueError(f"snapshot field 'P' has shape {arr.shape}, not {(n, 6, 6)}")
                arr = pack(arr, check_symmetric=True)
            if arr.shape != (n, *shape):
                want = (n, *shape)
                raise ValueError(f"snapshot field {name!r} has shape {arr.shape}, not {want}")
            getattr(table, name)[:n] = arr
        if n and np.any(table.status[:n] == FREE):
            raise ValueError("snapshot holds a free slot")
        table.n_active = n
        table.next_id = int(d["next_id"])
        table.imm_slot[:n] = -1
        had = np.flatnonzero(np.asarray(d["imm_slot"]) >= 0)
        table.alloc_imm(had)
        rows = table.imm_slot[had]
        table.imm_mu[rows] = np.asarray(d["imm_mu"], dtype=np.float64)[had]
        table.imm_x[rows] = np.asarray(d["imm_x"], dtype=np.float64)[had]
        table.imm_P[rows] = pack(np.asarray(d["imm_P"], dtype=np.float64)[had], True)
        if n and table.next_id <= int(table.id[:n].max()):
            raise ValueError("snapshot next_id is not above every track id")
        return table
