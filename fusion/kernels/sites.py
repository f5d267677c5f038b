"""Geometry kernels of the site rules: tracks against protected areas and lines, in ENU metres.

This module owns the per-scan arithmetic that puts every confirmed track against every site
without a Python loop per track: a uniform grid over the sites' reach finds candidate
(track, site) pairs, and exact distances follow for those pairs only. Areas are circles
(centre, radius) or polygons given by their edges (all rings of all parts, even-odd rule);
lines of contact are polylines with a precomputed "protected side" polygon.

Kernels write into arrays passed in and return counts. fusion.sites builds their inputs from
shapely geometry; tests check them against shapely on seeded random cases.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.jit import njit

# Area kinds in `site_type`.
AREA_CIRCLE = 0
AREA_POLYGON = 1


@njit
def seg_point(ax, ay, bx, by, px, py):
    """Squared distance from p to segment ab, and the nearest point (d2, qx, qy)."""
    dx = bx - ax
    dy = by - ay
    L2 = dx * dx + dy * dy
    t = 0.0
    if L2 > 0.0:
        t = ((px - ax) * dx + (py - ay) * dy) / L2
        t = min(max(t, 0.0), 1.0)
    qx = ax + t * dx
    qy = ay + t * dy
    ex = px - qx
    ey = py - qy
    return ex * ex + ey * ey, qx, qy


@njit
def seg_seg(p0x, p0y, p1x, p1y, ax, ay, bx, by):
    """Closest approach of segments p0p1 and ab: (squared distance, parameter s on p0p1).

    The usual clamped solution of the two-parameter least squares; an intersection gives
    distance 0 at its parameter.
    """
    d1x = p1x - p0x
    d1y = p1y - p0y
    d2x = bx - ax
    d2y = by - ay
    rx = p0x - ax
    ry = p0y - ay
    a = d1x * d1x + d1y * d1y
    e = d2x * d2x + d2y * d2y
    f = d2x * rx + d2y * ry
    eps = 1e-12
    s = 0.0
    t = 0.0
    if a <= eps and e <= eps:
        s = 0.0
        t = 0.0
    elif a <= eps:
        s = 0.0
        t = min(max(f / e, 0.0), 1.0)
    else:
        c = d1x * rx + d1y * ry
        if e <= eps:
            t = 0.0
            s = min(max(-c / a, 0.0), 1.0)
        else:
            b = d1x * d2x + d1y * d2y
            denom = a * e - b * b
            if denom > 0.0:
                s = min(max((b * f - c * e) / denom, 0.0), 1.0)
            else:
                s = 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t = 0.0
                s = min(max(-c / a, 0.0), 1.0)
            elif t > 1.0:
                t = 1.0
                s = min(max((b - c) / a, 0.0), 1.0)
    cx = p0x + d1x * s - (ax + d2x * t)
    cy = p0y + d1y * s - (ay + d2y * t)
    return cx * cx + cy * cy, s


@njit
def inside_edges(edges, k0, k1, px, py):
    """Even-odd point-in-polygon over edges[k0:k1] (rows ax, ay, bx, by)."""
    inside = False
    for k in range(k0, k1):
        ay = edges[k, 1]
        by = edges[k, 3]
        if (ay > py) != (by > py):
            ax = edges[k, 0]
            bx = edges[k, 2]
            x_cross = ax + (bx - ax) * (py - ay) / (by - ay)
            if px < x_cross:
                inside = not inside
    return inside


@njit
def nearest_edge(edges, k0, k1, px, py):
    """(distance, qx, qy, k) of the point of edges[k0:k1] nearest to p."""
    best = np.inf
    bqx = px
    bqy = py
    bk = k0
    for k in range(k0, k1):
        d2, qx, qy = seg_point(edges[k, 0], edges[k, 1], edges[k, 2], edges[k, 3], px, py)
        if d2 < best:
            best = d2
            bqx = qx
            bqy = qy
            bk = k
    return math.sqrt(best), bqx, bqy, bk


@njit
def area_distance(site_type, circle, edge_start, edges, j, px, py):
    """Distance (m, 0 inside) from p to area j, whether p is inside, the unit vector from the
    nearest boundary point towards p (ux, uy), and the distance to the boundary (m)."""
    if site_type[j] == AREA_CIRCLE:
        dx = px - circle[j, 0]
        dy = py - circle[j, 1]
        rho = math.sqrt(dx * dx + dy * dy)
        ux = 1.0
        uy = 0.0
        if rho > 0.0:
            ux = dx / rho
            uy = dy / rho
        inside = rho <= circle[j, 2]
        return max(rho - circle[j, 2], 0.0), inside, ux, uy, abs(rho - circle[j, 2])
    k0 = edge_start[j]
    k1 = edge_start[j + 1]
    d, qx, qy, k = nearest_edge(edges, k0, k1, px, py)
    inside = inside_edges(edges, k0, k1, px, py)
    if d > 0.0:
        ux = (px - qx) / d
        uy = (py - qy) / d
    else:
        # on the boundary: the edge's normal
        ex = edges[k, 2] - edges[k, 0]
        ey = edges[k, 3] - edges[k, 1]
        L = math.hypot(ex, ey)
        ux = 1.0
        uy = 0.0
        if L > 0.0:
            ux = ey / L
            uy = -ex / L
    return (0.0 if inside else d), inside, ux, uy, d


@njit
def area_cpa(site_type, circle, edge_start, edges, j, px, py, vx, vy, horizon_s):
    """Closest approach to area j of the straight path p + v t, t in [0, horizon_s]:
    (distance m, time s). Distance 0 when the path reaches the area."""
    ex = px + vx * horizon_s
    ey = py + vy * horizon_s
    if site_type[j] == AREA_CIRCLE:
        cx = circle[j, 0]
        cy = circle[j, 1]
        v2 = vx * vx + vy * vy
        t = 0.0
        if v2 > 0.0 and horizon_s > 0.0:
            t = -((px - cx) * vx + (py - cy) * vy) / v2
            t = min(max(t, 0.0), horizon_s)
        qx = px + vx * t - cx
        qy = py + vy * t - cy
        rho = math.sqrt(qx * qx + qy * qy)
        return max(rho - circle[j, 2], 0.0), t
    k0 = edge_start[j]
    k1 = edge_start[j + 1]
    if inside_edges(edges, k0, k1, px, py):
        return 0.0, 0.0
    best = np.inf
    best_s = 0.0
    for k in range(k0, k1):
        d2, s = seg_seg(px, py, ex, ey, edges[k, 0], edges[k, 1], edges[k, 2], edges[k, 3])
        if d2 < best or (d2 == best and s < best_s):
            best = d2
            best_s = s
    return math.sqrt(best), best_s * horizon_s


@njit
def _grid_cells(x0, y0, cell_m, nx, ny, xmin, ymin, xmax, ymax):
    """Inclusive cell index ranges covered by a box, clipped to the grid; empty -> i1 < i0."""
    i0 = int(math.floor((xmin - x0) / cell_m))
    i1 = int(math.floor((xmax - x0) / cell_m))
    k0 = int(math.floor((ymin - y0) / cell_m))
    k1 = int(math.floor((ymax - y0) / cell_m))
    return max(i0, 0), min(i1, nx - 1), max(k0, 0), min(k1, ny - 1)


@njit
def track_site_pairs(
    xy,  # (n, 2) track positions
    v,  # (n, 2) track velocities
    grid,  # (5,) x0, y0, cell_m, nx, ny
    cell_start,  # (nx*ny + 1,) CSR into cell_sites
    cell_sites,  # (m,) site indices
    site_type,  # (S,) AREA_*
    circle,  # (S, 3) cx, cy, r for circles
    edge_start,  # (S + 1,) CSR into edges
    edges,  # (E, 4)
    bound,  # (S, 3) bounding circle cx, cy, r of each area (a cheap first test)
    reach_m,  # (S,) report a pair when the closest approach is within this distance
    horizon_s,  # (S,) look-ahead of the path for this site (0: the present only)
    max_horizon_s,  # float, max of horizon_s (size of the swept box)
    mark,  # (S,) int64 scratch, all -1 on entry
    out_i,  # (cap,) int64
    out_j,  # (cap,) int64
    out_f,  # (cap, 7) float64: d_now, inside, ux, uy, d_cpa, t_cpa, d_boundary
):
    """Every (track, area) pair whose distance now or within the site's horizon comes within
    reach_m. Returns the number of pairs; when it exceeds cap, only the first cap are written
    and the caller retries with a larger buffer."""
    x0 = grid[0]
    y0 = grid[1]
    cell_m = grid[2]
    nx = int(grid[3])
    ny = int(grid[4])
    cap = out_i.shape[0]
    count = 0
    for i in range(xy.shape[0]):
        px = xy[i, 0]
        py = xy[i, 1]
        vx = v[i, 0]
        vy = v[i, 1]
        ex = px + vx * max_horizon_s
        ey = py + vy * max_horizon_s
        ci0, ci1, ck0, ck1 = _grid_cells(
            x0, y0, cell_m, nx, ny, min(px, ex), min(py, ey), max(px, ex), max(py, ey)
        )
        for ck in range(ck0, ck1 + 1):
            for ci in range(ci0, ci1 + 1):
                c = ck * nx + ci
                for q in range(cell_start[c], cell_start[c + 1]):
                    j = cell_sites[q]
                    if mark[j] == i:
                        continue
                    mark[j] = i
                    # bounding circle first: most sites in the swept cells are far away
                    H = horizon_s[j]
                    bx = px - bound[j, 0]
                    by = py - bound[j, 1]
                    t = 0.0
                    v2 = vx * vx + vy * vy
                    if H > 0.0 and v2 > 0.0:
                        t = min(max(-(bx * vx + by * vy) / v2, 0.0), H)
                    ex_ = bx + vx * t
                    ey_ = by + vy * t
                    lim = bound[j, 2] + reach_m[j]
                    if ex_ * ex_ + ey_ * ey_ > lim * lim:
                        continue
                    d_now, inside, ux, uy, d_edge = area_distance(
                        site_type, circle, edge_start, edges, j, px, py
                    )
                    if horizon_s[j] > 0.0 and d_now > 0.0:
                        d_cpa, t_cpa = area_cpa(
                            site_type, circle, edge_start, edges, j, px, py, vx, vy, horizon_s[j]
                        )
                    else:
                        d_cpa = d_now
                        t_cpa = 0.0
                    if d_cpa > reach_m[j]:
                        continue
                    if count < cap:
                        out_i[count] = i
                        out_j[count] = j
                        out_f[count, 0] = d_now
                        out_f[count, 1] = 1.0 if inside else 0.0
                        out_f[count, 2] = ux
                        out_f[count, 3] = uy
                        out_f[count, 4] = d_cpa
                        out_f[count, 5] = t_cpa
                        out_f[count, 6] = d_edge
                    count += 1
    # leave the scratch clean for the next call
    for i in range(mark.shape[0]):
        mark[i] = -1
    return count


@njit
def entry_times(i_arr, j_arr, xy, v, site_type, circle, edge_start, edges, dist_m, t_max, out_t):
    """For each pair, the first time t in [0, t_max[p]] at which track i's straight path comes
    within dist_m[p] of area j (the distance at t_max must be within it). Circles in closed
    form; polygons by bisection of the distance along the path, which finds the first entry
    for convex areas and an entry for others."""
    for p in range(i_arr.shape[0]):
        i = i_arr[p]
        j = j_arr[p]
        px = xy[i, 0]
        py = xy[i, 1]
        vx = v[i, 0]
        vy = v[i, 1]
        R = dist_m[p]
        if site_type[j] == AREA_CIRCLE:
            rr = circle[j, 2] + R
            dx = px - circle[j, 0]
            dy = py - circle[j, 1]
            a = vx * vx + vy * vy
            b = 2.0 * (dx * vx + dy * vy)
            c = dx * dx + dy * dy - rr * rr
            if c <= 0.0:
                out_t[p] = 0.0
            elif a <= 0.0:
                out_t[p] = t_max[p]
            else:
                disc = b * b - 4.0 * a * c
                if disc < 0.0:
                    out_t[p] = t_max[p]
                else:
                    t = (-b - math.sqrt(disc)) / (2.0 * a)
                    out_t[p] = min(max(t, 0.0), t_max[p])
            continue
        lo = 0.0
        hi = t_max[p]
        d0, _, _, _, _ = area_distance(site_type, circle, edge_start, edges, j, px, py)
        if d0 <= R:
            out_t[p] = 0.0
            continue
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            d, _, _, _, _ = area_distance(
                site_type, circle, edge_start, edges, j, px + vx * mid, py + vy * mid
            )
            if d <= R:
                hi = mid
            else:
                lo = mid
            if hi - lo < 0.05:  # ETAs are reported to 0.1 s
                break
        out_t[p] = hi


@njit
def line_signed_distance(xy, idx, edges, k0, k1, side_edges, s0, s1, out):
    """Signed distance of points xy[idx] to the polyline edges[k0:k1]: positive on the
    protected side (inside the side polygon side_edges[s0:s1]). out (len(idx), 3): s, ux, uy
    with u the unit vector from the nearest line point towards the point."""
    for p in range(idx.shape[0]):
        i = idx[p]
        px = xy[i, 0]
        py = xy[i, 1]
        d, qx, qy, k = nearest_edge(edges, k0, k1, px, py)
        if d > 0.0:
            ux = (px - qx) / d
            uy = (py - qy) / d
        else:
            ex = edges[k, 2] - edges[k, 0]
            ey = edges[k, 3] - edges[k, 1]
            L = math.hypot(ex, ey)
            ux = -ey / L if L > 0.0 else 1.0
            uy = ex / L if L > 0.0 else 0.0
        protected = inside_edges(side_edges, s0, s1, px, py)
        out[p, 0] = d if protected else -d
        out[p, 1] = ux
        out[p, 2] = uy


@njit
def line_band_signed_distance(xy, box, edges, k0, k1, side_edges, s0, s1, out_idx, out):
    """The points of xy inside box (xmin, ymin, xmax, ymax), in order, into out_idx, and
    their line_signed_distance into out (rows 0..count-1). Returns count."""
    m = 0
    for i in range(xy.shape[0]):
        x = xy[i, 0]
        y = xy[i, 1]
        if x >= box[0] and x <= box[2] and y >= box[1] and y <= box[3]:
            out_idx[m] = i
            m += 1
    line_signed_distance(xy, out_idx[:m], edges, k0, k1, side_edges, s0, s1, out)
    return m


@njit
def predict_horizontal(x, P, t_upd_s, rows, now_s, out_xy, out_v, out_Pxy, out_ok):
    """Horizontal position, velocity and position covariance of tracks `rows` predicted to
    now_s without process noise: xy + v dt and Ppp + dt (Ppv + Pvp) + dt^2 Pvv. out_ok marks
    tracks whose state is finite. Returns how many are."""
    n_ok = 0
    for p in range(rows.shape[0]):
        r = rows[p]
        dt = max(now_s - t_upd_s[r], 0.0)
        ok = True
        for c in range(6):
            if not math.isfinite(x[r, c]):
                ok = False
        out_ok[p] = ok
        if ok:
            n_ok += 1
        out_xy[p, 0] = x[r, 0] + x[r, 3] * dt
        out_xy[p, 1] = x[r, 1] + x[r, 4] * dt
        out_v[p, 0] = x[r, 3]
        out_v[p, 1] = x[r, 4]
        for a in range(2):
            for b in range(2):
                out_Pxy[p, a, b] = (
                    P[r, a, b]
                    + dt * (P[r, a, 3 + b] + P[r, 3 + a, b])
                    + dt * dt * P[r, 3 + a, 3 + b]
                )
    return n_ok


@njit
def cross_track_sigma(P, rows, dt_s, v, out):
    """Standard deviation (m) across the velocity of tracks `rows`' positions dt_s[p] after
    their last update, without process noise: sqrt(w' (Ppp + dt (Ppv + Pvp) + dt^2 Pvv) w),
    w the unit normal to v[p] (P the tracks' 6x6 covariances). The operations are those of
    the numpy form (elementwise sum, then einsum "ka,kab,kb->k"), in the same order, so the
    result is the same bit for bit."""
    for p in range(rows.shape[0]):
        r = rows[p]
        vx = v[p, 0]
        vy = v[p, 1]
        speed = np.hypot(vx, vy)  # np.hypot: the numpy form's own function
        if not speed >= 1e-9:  # np.maximum(speed, 1e-9), v being finite
            speed = 1e-9
        w0 = -vy / speed
        w1 = vx / speed
        d = dt_s[p]
        d2 = d**2
        acc = 0.0
        for a in range(2):
            wa = w0 if a == 0 else w1
            for b in range(2):
                wb = w0 if b == 0 else w1
                pt = (P[r, a, b] + d * (P[r, a, 3 + b] + P[r, b, 3 + a])) + d2 * P[r, 3 + a, 3 + b]
                acc += wa * pt * wb
        out[p] = 0.0 if acc < 0.0 else math.sqrt(acc)  # np.maximum keeps a NaN


@njit
def sigma_along(Pxy, idx, u, out):
    """Standard deviation (m) of positions idx[p] along unit vectors u[p]:
    sqrt(u' Pxy u), in the order of einsum "ka,kab,kb->k" (the same bits)."""
    for p in range(idx.shape[0]):
        i = idx[p]
        acc = 0.0
        for a in range(2):
            for b in range(2):
                acc += u[p, a] * Pxy[i, a, b] * u[p, b]
        out[p] = 0.0 if acc < 0.0 else math.sqrt(acc)  # np.maximum keeps a NaN
