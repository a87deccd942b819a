"""Numba kernels of the pixel statistics (time on the last axis).

Every kernel processes the half-open pixel range ``[start, stop)`` of one or
more 2-D input arrays and writes into preallocated 1-D (or 2-D) outputs, so a
caller can split the pixels over threads (see :mod:`._parallel`).  Inputs come
as a typed list ``xs`` of C-contiguous 2-D arrays plus an ``orient`` vector:
``orient[v] == 0`` means ``xs[v]`` is ``(pixels, time)``, ``1`` means it is
``(time, pixels)`` (the natural layout of a ``(time, y, x)`` cube).  Blocks of
``_B`` pixels are first gathered into a small ``(B, V, T)`` float64 buffer with
cache-friendly loops; arithmetic is in float64 except the Theil–Sen pairwise
slopes, which are formed in the input precision (twice the SIMD width for
float32).  ``error_model="numpy"`` keeps Python's division checks out of the
loops so that they vectorise.

NaN policy inside the kernels: a value is valid when it is not NaN; a pixel is
computed from its valid values (complete cases across variables for
multi-variable statistics) when ``skipna`` is true and at least ``min_valid``
values are valid, otherwise every statistic is NaN (the count ``n`` is always
written).  No kernel emits warnings.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._special import r_to_p, t_sf2

_B = 256  # pixels per gathered block

_JIT = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")

# Mann–Kendall variants
MK_ORIGINAL = 0
MK_HAMED_RAO = 1
MK_YUE_WANG = 2
MK_PREWHITENING = 3
MK_TFPW = 4


# --------------------------------------------------------------------------- helpers


@nb.njit(inline="always", **_JIT)
def _gather(xs, orient, p0, nb_, buf):
    nvar = buf.shape[1]
    for v in range(nvar):
        x = xs[v]
        if orient[v] == 0:
            T = x.shape[1]
            for b in range(nb_):
                for t in range(T):
                    buf[b, v, t] = x[p0 + b, t]
        else:
            T = x.shape[0]
            for t in range(T):
                for b in range(nb_):
                    buf[b, v, t] = x[t, p0 + b]


@nb.njit(**_JIT)
def _insertion_sort(a, n):
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@nb.njit(**_JIT)
def _average_ranks(a, n, ranks):
    """1-based average ranks of ``a[:n]`` (ties share the mean rank), like scipy's rankdata.

    rank_i = #(a_j < a_i) + (#(a_j == a_i) + 1) / 2, by branch-free counting
    (O(n²), vectorised; faster than sorting for the short series here).
    """
    for i in range(n):
        x = a[i]
        lt = 0
        eq = 0
        for j in range(n):
            y = a[j]
            lt += y < x
            eq += y == x
        ranks[i] = lt + 0.5 * (eq + 1.0)


@nb.njit(**_JIT)
def _select(a, lo, hi, k):
    """Rearrange ``a[lo:hi]`` so that ``a[k]`` is the k-th smallest (quickselect)."""
    while hi - lo > 16:
        mid = (lo + hi) >> 1
        # median of three pivot moved to a[lo]
        x0 = a[lo]
        x1 = a[mid]
        x2 = a[hi - 1]
        if x1 < x0:
            x0, x1 = x1, x0
        if x2 < x1:
            x1, x2 = x2, x1
            if x1 < x0:
                x0, x1 = x1, x0
        piv = x1
        i = lo
        j = hi - 1
        while i <= j:
            while a[i] < piv:
                i += 1
            while a[j] > piv:
                j -= 1
            if i <= j:
                tmp = a[i]
                a[i] = a[j]
                a[j] = tmp
                i += 1
                j -= 1
        if k <= j:
            hi = j + 1
        elif k >= i:
            lo = i
        else:
            return a[k]
    # small range: insertion sort
    for i in range(lo + 1, hi):
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v
    return a[k]


@nb.njit(**_JIT)
def _median_sorted(a, n):
    if n % 2 == 1:
        return a[n // 2]
    return 0.5 * (a[n // 2 - 1] + a[n // 2])


@nb.njit(**_JIT)
def _split_mid(a, m, v):
    """(max{a < v} + min{a >= v}) / 2 — the even-count median when v separates the halves."""
    mx = -np.inf
    mn = np.inf
    for i in range(m):
        x = a[i]
        below = x < v
        u = x if below else -np.inf
        w = np.inf if below else x
        mx = u if u > mx else mx
        mn = w if w < mn else mn
    return 0.5 * (float(mx) + float(mn))


@nb.njit(**_JIT)
def _min_ge_max_lt(a, m, lo, hi):
    """(min{a >= lo}, max{a < hi}) in one branch-free pass."""
    mn = np.inf
    mx = -np.inf
    for i in range(m):
        x = a[i]
        u = x if x >= lo else np.inf
        w = x if x < hi else -np.inf
        mn = u if u < mn else mn
        mx = w if w > mx else mx
    return mn, mx


@nb.njit(**_JIT)
def _two_order_stats(a, n, k1, k2):
    """The k1-th and k2-th smallest of ``a[:n]`` by branch-free rank counting (small n).

    Rank of element i = #(a_j < a_i) + #(a_j == a_i, j < i): a permutation of 0..n-1.
    """
    v1 = np.nan
    v2 = np.nan
    for i in range(n):
        x = a[i]
        r = 0
        for j in range(n):
            y = a[j]
            r += (y < x) | ((y == x) & (j < i))
        if r == k1:
            v1 = x
        if r == k2:
            v2 = x
    return v1, v2


@nb.njit(**_JIT)
def _tie_term_unsorted(a, n):
    """Sum over tie groups of t(t-1)(2t+5), from per-element group sizes."""
    tot = 0.0
    for i in range(n):
        x = a[i]
        c = 0
        for j in range(n):
            c += a[j] == x
        tot += (c - 1.0) * (2.0 * c + 5.0)
    return tot


@nb.njit(**_JIT)
def _median_bracket(a, m, small, g_lo, g_hi, piv):
    """Median of ``a[:m]`` (finite values) without reordering ``a``.

    Narrows a value bracket ``[lo, hi)`` holding the middle order statistics
    by counting passes (branch-free loops that vectorise): each pass counts the
    values below two pivots.  The first pivots are the caller's guesses
    ``g_lo <= g_hi`` (OLS slope -/+ half its standard error), later ones are
    placed just outside the median ranks by linear interpolation of the ranks
    inside the bracket (with a bisection step every fourth pass).  Invariant:
    ``clo = #(a < lo) <= k1`` and ``chi = #(a < hi) > k2``.  When the bracket
    holds at most two values, or only copies of one value, one min/max pass
    reads the answer; otherwise (heavy ties stall the narrowing) the values in
    the bracket are copied to ``small`` and selected there.  ``piv`` is a
    2-element scratch array of ``a``'s dtype so comparisons stay in that precision.
    """
    k2 = m // 2
    k1 = k2 - 1 if m % 2 == 0 else k2
    lo = -np.inf
    clo = 0
    hi = np.inf
    chi = m
    amin = np.inf
    amax = -np.inf
    stall = 0
    for it in range(40):
        nin = chi - clo
        if nin <= 2 or stall >= 2:
            break
        if it == 0:
            va = g_lo
            vb = g_hi
        else:
            if amin == np.inf and (lo == -np.inf or hi == np.inf):
                # a guess missed on one side: the data range closes the bracket
                amin, amax = _min_ge_max_lt(a, m, -np.inf, np.inf)
            lo_f = lo if lo > -np.inf else amin
            hi_f = hi if hi < np.inf else amax
            width = hi_f - lo_f
            if it % 4 == 3:
                fa = 0.25
                fb = 0.75
            else:
                dd = 0.5 + 0.05 * nin
                fa = (k1 - clo - dd) / nin
                fb = (k2 + 1 - clo + dd) / nin
            va = lo_f + max(fa, 0.0) * width
            vb = lo_f + min(fb, 1.0) * width
        piv[0] = va
        piv[1] = vb
        pa = piv[0]
        pb = piv[1]
        ca = 0
        cb = 0
        for i in range(m):
            x = a[i]
            ca += x < pa
            cb += x < pb
        if ca <= k1:
            if pa > lo:
                lo = pa
                clo = ca
        elif ca > k2:
            if pa < hi:
                hi = pa
                chi = ca
        else:
            return _split_mid(a, m, pa)
        if cb > k2:
            if pb < hi:
                hi = pb
                chi = cb
        elif cb <= k1:
            if pb > lo:
                lo = pb
                clo = cb
        else:
            return _split_mid(a, m, pb)
        if it > 0 and chi - clo >= nin:
            stall += 1
    nin = chi - clo
    first, last = _min_ge_max_lt(a, m, lo, hi)
    if nin == 1 or first == last:
        return first
    if nin == 2:
        if m % 2 == 0:
            return 0.5 * (float(first) + float(last))
        return first if k1 == clo else last
    nsm = 0
    for i in range(m):
        x = a[i]
        small[nsm] = x
        nsm += (x >= lo) & (x < hi)
    kk = k2 - clo
    if nsm <= 24:
        v1, v2 = _two_order_stats(small, nsm, k1 - clo, kk)
        return 0.5 * (float(v1) + float(v2))
    top = _select(small, 0, nsm, kk)
    if m % 2 == 1:
        return top
    low = small[0]
    for i in range(1, kk):
        if small[i] > low:
            low = small[i]
    return 0.5 * (float(low) + float(top))


@nb.njit(**_JIT)
def _tie_term(ys, n):
    """Sum over tie groups of t(t-1)(2t+5) for sorted ``ys[:n]``."""
    tot = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and ys[j + 1] == ys[i]:
            j += 1
        g = j - i + 1
        if g > 1:
            tot += g * (g - 1.0) * (2.0 * g + 5.0)
        i = j + 1
    return tot


@nb.njit(**_JIT)
def _mk_s(y, n):
    s = 0
    for i in range(n - 1):
        yi = y[i]
        for j in range(i + 1, n):
            d = y[j] - yi
            if d > 0:
                s += 1
            elif d < 0:
                s -= 1
    return s


@nb.njit(**_JIT)
def _acf_at(y, n, mean, lag, acov0):
    acc = 0.0
    for k in range(n - lag):
        acc += (y[k] - mean) * (y[k + lag] - mean)
    return acc / acov0


@nb.njit(**_JIT)
def _centered_ss(y, n):
    m = 0.0
    for k in range(n):
        m += y[k]
    m /= n
    ss = 0.0
    for k in range(n):
        d = y[k] - m
        ss += d * d
    return m, ss


@nb.njit(**_JIT)
def _z_from_s(s, var_s):
    if s == 0:
        return 0.0          # S = 0 gives Z = 0 (and p = 1) even when Var(S) = 0 (constant series)
    if not var_s > 0.0:
        return np.nan
    if s > 0:
        return (s - 1.0) / math.sqrt(var_s)
    if s < 0:
        return (s + 1.0) / math.sqrt(var_s)
    return 0.0


# --------------------------------------------------------------------------- OLS


@nb.njit(**_JIT)
def ols_kernel(xs, orient, tt, min_valid, skipna,
               slope, intercept, stderr, tval, pval, r2, nout, start, stop):
    T = tt.shape[0]
    buf = np.empty((_B, 1, T))
    nan = np.nan
    for p0 in range(start, stop, _B):
        nb_ = min(_B, stop - p0)
        _gather(xs, orient, p0, nb_, buf)
        for b in range(nb_):
            pix = p0 + b
            n = 0
            st = 0.0
            sy = 0.0
            for t in range(T):
                v = buf[b, 0, t]
                if v == v:
                    n += 1
                    st += tt[t]
                    sy += v
            nout[pix] = n
            if n < min_valid or n < 3 or (not skipna and n < T):
                slope[pix] = nan
                intercept[pix] = nan
                stderr[pix] = nan
                tval[pix] = nan
                pval[pix] = nan
                r2[pix] = nan
                continue
            tm = st / n
            ym = sy / n
            # a constant series has slope 0 exactly (rounding of the mean must not make
            # a spurious t): slope 0, intercept the value, SE 0, t 0, p 1, r2 undefined
            vfirst = nan
            vconst = True
            for t in range(T):
                v = buf[b, 0, t]
                if v == v:
                    if vfirst != vfirst:
                        vfirst = v
                    elif v != vfirst:
                        vconst = False
            if vconst:
                slope[pix] = 0.0
                intercept[pix] = vfirst
                stderr[pix] = 0.0
                tval[pix] = 0.0
                pval[pix] = 1.0
                r2[pix] = nan
                continue
            stt = 0.0
            sty = 0.0
            syy = 0.0
            for t in range(T):
                v = buf[b, 0, t]
                if v == v:
                    dt = tt[t] - tm
                    dy = v - ym
                    stt += dt * dt
                    sty += dt * dy
                    syy += dy * dy
            if stt <= 0.0:
                slope[pix] = nan
                intercept[pix] = nan
                stderr[pix] = nan
                tval[pix] = nan
                pval[pix] = nan
                r2[pix] = nan
                continue
            bb = sty / stt
            sse = syy - bb * sty
            if sse < 0.0:
                sse = 0.0
            se = math.sqrt(sse / (n - 2) / stt)
            slope[pix] = bb
            intercept[pix] = ym - bb * tm
            stderr[pix] = se
            if se > 0.0:
                tv_ = bb / se
                tval[pix] = tv_
                pval[pix] = t_sf2(tv_, n - 2)
            elif bb != 0.0:
                tval[pix] = math.copysign(np.inf, bb)
                pval[pix] = 0.0
            else:
                tval[pix] = nan
                pval[pix] = nan
            r2[pix] = sty * sty / (stt * syy) if syy > 0.0 else nan


# --------------------------------------------------------------------------- Mann–Kendall + Sen


@nb.njit(**_JIT)
def mk_kernel(xs, orient, tt, min_valid, skipna, variant, lag, zcrit, small_exact, ptable,
              slope, intercept, s_out, var_out, z_out, p_out, tau_out, nout, start, stop):
    """Theil–Sen slope/intercept and Mann–Kendall S, Var(S), Z, p, tau.

    ``tt`` are times in years relative to the first time step; the intercept is
    Conover's ``median(y) - slope * median(t)`` over valid values (the value of
    the line at the first time step).  ``variant`` selects the variance
    correction (see ``MK_*``); ``lag <= 0`` uses all lags.  ``ptable[n, |S|]``
    holds exact two-sided p-values for tie-free series with n <= 10, used when
    ``small_exact`` is true and the variant is the original test.
    """
    T = tt.shape[0]
    buf = np.empty((_B, 1, T))
    yv = np.empty(T)
    tv = np.empty(T)
    ys = np.empty(T)
    wk = np.empty(T)
    rk = np.empty(T)
    npairs = T * (T - 1) // 2
    fdt = xs[0].dtype
    sl = np.empty(max(npairs, 1), dtype=fdt)
    small = np.empty(max(npairs, T, 1), dtype=fdt)
    piv = np.empty(2, dtype=fdt)
    yf = np.empty(T, dtype=fdt)
    tf = np.empty(T, dtype=fdt)
    nan = np.nan
    inf = np.inf
    for p0 in range(start, stop, _B):
        nb_ = min(_B, stop - p0)
        _gather(xs, orient, p0, nb_, buf)
        for b in range(nb_):
            pix = p0 + b
            n = 0
            sy = 0.0
            st = 0.0
            sty = 0.0
            stt = 0.0
            syy = 0.0
            for t in range(T):
                v = buf[b, 0, t]
                if v == v and abs(v) < inf:
                    yv[n] = v
                    tv[n] = tt[t]
                    n += 1
                    ti = tt[t]
                    sy += v
                    st += ti
                    sty += ti * v
                    stt += ti * ti
                    syy += v * v
            nout[pix] = n
            if n < min_valid or n < 2 or (not skipna and n < T):
                slope[pix] = nan
                intercept[pix] = nan
                s_out[pix] = nan
                var_out[pix] = nan
                z_out[pix] = nan
                p_out[pix] = nan
                tau_out[pix] = nan
                continue
            # Pairwise slopes in the input precision, lag-major order (contiguous loads:
            # the loop vectorises).  Division, not multiplication by 1/dt: the slope
            # must be bit-identical to the textbook definition because ties of the
            # detrended series (Hamed-Rao ranks) depend on it.
            for k in range(n):
                yf[k] = yv[k]
                tf[k] = tv[k]
            base = 0
            for lag_ in range(1, n):
                for i in range(n - lag_):
                    sl[base + i] = (yf[i + lag_] - yf[i]) / (tf[i + lag_] - tf[i])
                base += n - lag_
            m = base
            # S and tied pairs from the slope signs (time distances are positive, and a
            # difference of two distinct floats is never rounded to zero)
            npos = 0
            nneg = 0
            for k in range(m):
                q = sl[k]
                npos += q > 0
                nneg += q < 0
            s = npos - nneg
            nz = m - npos - nneg
            # OLS slope -/+ 0.5 SE: first pivots around the Sen slope
            cstt = stt - st * st / n
            csty = sty - st * sy / n
            csyy = syy - sy * sy / n
            g = csty / cstt if cstt > 0.0 else 0.0
            res = (csyy - g * csty) / max(n - 2, 1) / cstt if cstt > 0.0 else 0.0
            dg = 0.5 * math.sqrt(res) if res > 0.0 else 0.0
            beta = _median_bracket(sl, m, small, g - dg, g + dg, piv)
            ties = _tie_term_unsorted(yv, n) if nz > 0 else 0.0
            # median(y) by the same counting selection (first pivots mean -/+ sd/4)
            ym = sy / n
            sdy = 0.25 * math.sqrt(csyy / n) if csyy > 0.0 else 0.0
            ymed = _median_bracket(yf, n, small, ym - sdy, ym + sdy, piv)
            tmed = _median_sorted(tv, n)
            slope[pix] = beta
            intercept[pix] = ymed - tmed * beta
            fn = float(n)
            var_s = (fn * (fn - 1.0) * (2.0 * fn + 5.0) - ties) / 18.0
            neff = fn
            if variant == MK_HAMED_RAO or variant == MK_YUE_WANG:
                lag_eff = n if lag <= 0 else min(lag + 1, n)
                for k in range(n):
                    wk[k] = yv[k] - (tv[k] + 1.0) * beta
                if variant == MK_HAMED_RAO:
                    _average_ranks(wk, n, rk)
                    mean, acov0 = _centered_ss(rk, n)
                    bound = zcrit / math.sqrt(fn)
                    sni = 0.0
                    # a constant detrended series has no autocorrelation to correct for
                    for i in range(1, lag_eff if acov0 > 0.0 else 1):
                        a = _acf_at(rk, n, mean, i, acov0)
                        if a > bound or a < -bound or a != a:
                            sni += (fn - i) * (fn - i - 1.0) * (fn - i - 2.0) * a
                    var_s = var_s * (1.0 + 2.0 / (fn * (fn - 1.0) * (fn - 2.0)) * sni)
                else:
                    mean, acov0 = _centered_ss(wk, n)
                    sni = 0.0
                    for i in range(1, lag_eff if acov0 > 0.0 else 1):
                        sni += (1.0 - i / fn) * _acf_at(wk, n, mean, i, acov0)
                    var_s = var_s * (1.0 + 2.0 * sni)
            elif variant == MK_PREWHITENING or variant == MK_TFPW:
                if variant == MK_TFPW:
                    for k in range(n):
                        rk[k] = yv[k] - (tv[k] + 1.0) * beta
                else:
                    for k in range(n):
                        rk[k] = yv[k]
                mean, acov0 = _centered_ss(rk, n)
                r1 = _acf_at(rk, n, mean, 1, acov0) if acov0 > 0.0 else 0.0
                for k in range(n - 1):
                    wk[k] = rk[k + 1] - rk[k] * r1
                    if variant == MK_TFPW:
                        wk[k] = wk[k] + (tv[k + 1]) * beta
                n1 = n - 1
                s = _mk_s(wk, n1)
                for k in range(n1):
                    ys[k] = wk[k]
                _insertion_sort(ys, n1)
                neff = float(n1)
                var_s = (neff * (neff - 1.0) * (2.0 * neff + 5.0) - _tie_term(ys, n1)) / 18.0
            s_out[pix] = s
            var_out[pix] = var_s
            z = _z_from_s(s, var_s)
            z_out[pix] = z
            if small_exact and variant == MK_ORIGINAL and n < ptable.shape[0] and ties == 0.0:
                p_out[pix] = ptable[n, abs(s)]
            else:
                # normal p filled in afterwards by a vectorised ndtr (see norm_p_fill)
                p_out[pix] = nan
            tau_out[pix] = s / (0.5 * neff * (neff - 1.0)) if neff > 1 else nan


def mk_exact_table(nmax: int = 10) -> np.ndarray:
    """Exact two-sided p-values ``P(|S| >= |s|)`` of the tie-free MK statistic, n < nmax.

    ``mk_exact_table(11)`` covers n <= 10 (the table used by :func:`mann_kendall`).

    Built from the number of permutations with a given number of inversions
    (S = n(n-1)/2 - 2 * inversions).  ``table[n, s]`` for ``0 <= s <= n(n-1)/2``.
    """
    smax = nmax * (nmax - 1) // 2
    table = np.full((nmax, smax + 1), np.nan)
    counts = np.array([1.0])  # inversion counts for n = 1
    for n in range(1, nmax):
        if n >= 2:
            new = np.zeros(counts.size + n - 1)
            for shift in range(n):
                new[shift:shift + counts.size] += counts
            counts = new
        if n < 2:
            table[n, 0] = 1.0
            continue
        M = n * (n - 1) // 2
        total = counts.sum()
        s_vals = M - 2 * np.arange(counts.size)   # S for each inversion count
        prob = counts / total
        for s in range(M + 1):
            table[n, s] = min(1.0, prob[np.abs(s_vals) >= s].sum())
    return table


# --------------------------------------------------------------------------- CV


@nb.njit(**_JIT)
def cv_kernel(xs, orient, min_valid, skipna, ddof, eps, cv, mean_out, std_out, nout, start, stop):
    T = xs[0].shape[1] if orient[0] == 0 else xs[0].shape[0]
    buf = np.empty((_B, 1, T))
    nan = np.nan
    for p0 in range(start, stop, _B):
        nb_ = min(_B, stop - p0)
        _gather(xs, orient, p0, nb_, buf)
        for b in range(nb_):
            pix = p0 + b
            n = 0
            sm = 0.0
            for t in range(T):
                v = buf[b, 0, t]
                if v == v:
                    n += 1
                    sm += v
            nout[pix] = n
            if n < min_valid or n <= ddof or n < 1 or (not skipna and n < T):
                cv[pix] = nan
                mean_out[pix] = nan
                std_out[pix] = nan
                continue
            mu = sm / n
            ss = 0.0
            for t in range(T):
                v = buf[b, 0, t]
                if v == v:
                    d = v - mu
                    ss += d * d
            sd = math.sqrt(ss / (n - ddof))
            mean_out[pix] = mu
            std_out[pix] = sd
            if mu <= 0.0 or abs(mu) < eps:
                cv[pix] = nan
            else:
                cv[pix] = sd / mu


# --------------------------------------------------------------------------- Hurst


@nb.njit(**_JIT)
def _rs(x, lo, hi):
    """R/S of x[lo:hi] with population s.d.; returns (R, S)."""
    tau = hi - lo
    m = 0.0
    for k in range(lo, hi):
        m += x[k]
    m /= tau
    cum = 0.0
    mx = -np.inf
    mn = np.inf
    ss = 0.0
    for k in range(lo, hi):
        d = x[k] - m
        cum += d
        ss += d * d
        if cum > mx:
            mx = cum
        if cum < mn:
            mn = cum
    return mx - mn, math.sqrt(ss / tau)


@nb.njit(**_JIT)
def _fit_slope(xv, yv, m):
    if m < 3:
        return np.nan
    xm = 0.0
    ym = 0.0
    for i in range(m):
        xm += xv[i]
        ym += yv[i]
    xm /= m
    ym /= m
    sxx = 0.0
    sxy = 0.0
    for i in range(m):
        dx = xv[i] - xm
        sxx += dx * dx
        sxy += dx * (yv[i] - ym)
    if sxx <= 0.0:
        return np.nan
    return sxy / sxx


@nb.njit(**_JIT)
def hurst_kernel(xs, orient, min_valid, skipna, method, tau_min, differences,
                 h_out, nout, start, stop):
    """Hurst exponent by R/S analysis (method 0 = expanding windows, 1 = blocks)."""
    T = xs[0].shape[1] if orient[0] == 0 else xs[0].shape[0]
    buf = np.empty((_B, 1, T))
    xi = np.empty(T)
    lx = np.empty(T + 1)
    ly = np.empty(T + 1)
    nan = np.nan
    for p0 in range(start, stop, _B):
        nb_ = min(_B, stop - p0)
        _gather(xs, orient, p0, nb_, buf)
        for b in range(nb_):
            pix = p0 + b
            n = 0
            for t in range(T):
                v = buf[b, 0, t]
                if v == v:
                    xi[n] = v
                    n += 1
            nout[pix] = n
            if n < min_valid or (not skipna and n < T):
                h_out[pix] = nan
                continue
            m = n
            if differences:
                for k in range(n - 1):
                    xi[k] = xi[k + 1] - xi[k]
                m = n - 1
            npts = 0
            if method == 0:
                for tau in range(max(tau_min, 2), m + 1):
                    R, S = _rs(xi, 0, tau)
                    if S > 0.0 and R > 0.0:
                        lx[npts] = math.log(tau)
                        ly[npts] = math.log(R / S)
                        npts += 1
            else:
                for tau in range(max(tau_min, 2), m // 2 + 1):
                    acc = 0.0
                    cnt = 0
                    for blk in range(m // tau):
                        R, S = _rs(xi, blk * tau, (blk + 1) * tau)
                        if S > 0.0 and R > 0.0:
                            acc += R / S
                            cnt += 1
                    if cnt > 0:
                        lx[npts] = math.log(tau)
                        ly[npts] = math.log(acc / cnt)
                        npts += 1
                if m >= 2:
                    R, S = _rs(xi, 0, m)
                    if S > 0.0 and R > 0.0:
                        lx[npts] = math.log(m)
                        ly[npts] = math.log(R / S)
                        npts += 1
            h_out[pix] = _fit_slope(lx, ly, npts)


# --------------------------------------------------------------------------- correlation


@nb.njit(**_JIT)
def _standardise(x, n):
    """In place: x[:n] ← (x − mean) / max|x − mean|, with a first scaling by max|x|.

    Correlations are invariant to this affine map; it keeps every product of the
    sums of squares in range.  A constant series becomes all zeros.
    """
    same = True
    for k in range(1, n):
        if x[k] != x[0]:
            same = False
    if same:
        for k in range(n):
            x[k] = 0.0
        return
    amax = 0.0
    for k in range(n):
        ax = abs(x[k])
        if ax > amax:
            amax = ax
    if amax > 0.0 and amax < np.inf:
        for k in range(n):
            x[k] /= amax
    m = 0.0
    for k in range(n):
        m += x[k]
    m /= n
    dmax = 0.0
    for k in range(n):
        x[k] -= m
        ad = abs(x[k])
        if ad > dmax:
            dmax = ad
    if dmax > 0.0 and dmax < np.inf:
        for k in range(n):
            x[k] /= dmax


@nb.njit(**_JIT)
def corr_kernel(xs, orient, min_valid, skipna, rank, r_out, p_out, nout, start, stop):
    """Pearson (rank=False) or Spearman (rank=True) correlation of xs[0] and xs[1]."""
    T = xs[0].shape[1] if orient[0] == 0 else xs[0].shape[0]
    buf = np.empty((_B, 2, T))
    a = np.empty(T)
    c = np.empty(T)
    ra = np.empty(T)
    rc = np.empty(T)
    nan = np.nan
    for p0 in range(start, stop, _B):
        nb_ = min(_B, stop - p0)
        _gather(xs, orient, p0, nb_, buf)
        for b in range(nb_):
            pix = p0 + b
            n = 0
            for t in range(T):
                u = buf[b, 0, t]
                w = buf[b, 1, t]
                if u == u and w == w:
                    a[n] = u
                    c[n] = w
                    n += 1
            nout[pix] = n
            if n < min_valid or n < 3 or (not skipna and n < T):
                r_out[pix] = nan
                p_out[pix] = nan
                continue
            if rank:
                _average_ranks(a, n, ra)
                _average_ranks(c, n, rc)
            else:
                for k in range(n):
                    ra[k] = a[k]
                    rc[k] = c[k]
            # scale, centre and scale again: sums of squares neither overflow nor
            # underflow at any magnitude (1e-150 .. 1e150 and beyond)
            _standardise(ra, n)
            _standardise(rc, n)
            saa = 0.0
            scc = 0.0
            sac = 0.0
            for k in range(n):
                da = ra[k]
                dc = rc[k]
                saa += da * da
                scc += dc * dc
                sac += da * dc
            if saa <= 0.0 or scc <= 0.0:
                r_out[pix] = nan
                p_out[pix] = nan
                continue
            r = sac / math.sqrt(saa * scc)
            if r > 1.0:
                r = 1.0
            elif r < -1.0:
                r = -1.0
            r_out[pix] = r
            p_out[pix] = r_to_p(r, n - 2)


#: status codes of :func:`partial_kernel` (``status`` output)
PC_OK = 0
PC_TOO_FEW = 1
PC_CONSTANT = 2
PC_COLLINEAR = 3
#: least pivot of the Gauss–Jordan inversion of the correlation matrix: a variable whose
#: squared multiple correlation with the others exceeds 1 − 1e-13 counts as collinear
PC_PIVOT_TOL = 1e-13


@nb.njit(**_JIT)
def partial_kernel(xs, orient, nreport, min_valid, skipna, r_out, p_out, nout, status,
                   start, stop):
    """Partial correlation of xs[0] with each of xs[1..nreport], controlling for all others.

    Complete cases across all variables; every variable is standardised
    (:func:`_standardise`), so any magnitude works; precision matrix P of the
    correlation matrix (Gauss–Jordan inversion); r_0j.rest = -P_0j / sqrt(P_00 P_jj);
    p from t with df = n - 2 - k, k = number of variables controlled for.
    ``status``: 0 computed, 1 too few complete cases, 2 a variable is constant,
    3 the variables are collinear (a pivot below ``PC_PIVOT_TOL``); r and p are
    NaN unless the status is 0.
    """
    V = len(xs)
    T = xs[0].shape[1] if orient[0] == 0 else xs[0].shape[0]
    buf = np.empty((_B, V, T))
    d = np.empty((V, T))
    C = np.empty((V, V))
    inv = np.empty((V, V))
    nan = np.nan
    k_ctrl = V - 2
    for p0 in range(start, stop, _B):
        nb_ = min(_B, stop - p0)
        _gather(xs, orient, p0, nb_, buf)
        for b in range(nb_):
            pix = p0 + b
            n = 0
            for t in range(T):
                ok = True
                for v in range(V):
                    x = buf[b, v, t]
                    if x != x:
                        ok = False
                        break
                if ok:
                    for v in range(V):
                        d[v, n] = buf[b, v, t]
                    n += 1
            nout[pix] = n
            df = n - 2 - k_ctrl
            code = PC_OK
            if n < min_valid or df < 1 or (not skipna and n < T):
                code = PC_TOO_FEW
            if code == PC_OK:
                for v in range(V):
                    _standardise(d[v], n)
                for v in range(V):
                    for w in range(v, V):
                        acc = 0.0
                        for k in range(n):
                            acc += d[v, k] * d[w, k]
                        C[v, w] = acc
                        C[w, v] = acc
                for v in range(V):
                    if not C[v, v] > 0.0:
                        code = PC_CONSTANT
            if code == PC_OK:
                # to correlation matrix
                for v in range(V):
                    d[v, 0] = 1.0 / math.sqrt(C[v, v])
                for v in range(V):
                    for w in range(V):
                        C[v, w] = C[v, w] * d[v, 0] * d[w, 0]
                    C[v, v] = 1.0
                # Gauss–Jordan inversion (symmetric positive definite: no pivoting needed;
                # the pivot of column c is 1 − R² of variable c on the preceding ones)
                for v in range(V):
                    for w in range(V):
                        inv[v, w] = 1.0 if v == w else 0.0
                for col in range(V):
                    piv = C[col, col]
                    if not piv > PC_PIVOT_TOL:
                        code = PC_COLLINEAR
                        break
                    ip = 1.0 / piv
                    for w in range(V):
                        C[col, w] *= ip
                        inv[col, w] *= ip
                    for v in range(V):
                        if v != col:
                            f = C[v, col]
                            if f != 0.0:
                                for w in range(V):
                                    C[v, w] -= f * C[col, w]
                                    inv[v, w] -= f * inv[col, w]
            status[pix] = code
            for j in range(nreport):
                if code != PC_OK:
                    r_out[pix, j] = nan
                    p_out[pix, j] = nan
                    continue
                den = inv[0, 0] * inv[j + 1, j + 1]
                if not den > 0.0:
                    r_out[pix, j] = nan
                    p_out[pix, j] = nan
                    continue
                r = -inv[0, j + 1] / math.sqrt(den)
                if r > 1.0:
                    r = 1.0
                elif r < -1.0:
                    r = -1.0
                r_out[pix, j] = r
                p_out[pix, j] = r_to_p(r, df)


# --------------------------------------------------------------------------- Fisher–Jenks


@nb.njit(cache=True, nogil=True, error_model="numpy")
def fisher_jenks_dp(w, s1, s2, k):
    """Exact optimal partition of m sorted distinct values into k contiguous classes.

    ``w``, ``s1``, ``s2`` are prefix sums (length m + 1) of the weights, of
    weight × value and of weight × value² (values centred for precision).  The
    within-class sum of squares of values[i:j] is
    ``s2[j]-s2[i] - (s1[j]-s1[i])**2/(w[j]-w[i])``.  Because this cost satisfies
    the quadrangle inequality, the optimal start of the last class is
    non-decreasing in j, so each layer of the dynamic programme is solved by
    divide and conquer in O(m log m) (total O(k m log m)).  Returns the class
    start indices (length k + 1, last = m) and the minimal total cost.
    """
    m = w.shape[0] - 1
    prev = np.empty(m + 1)
    cur = np.empty(m + 1)
    split = np.zeros((k + 1, m + 1), dtype=np.int32)
    prev[0] = 0.0
    for j in range(1, m + 1):
        ww = w[j]
        a = s1[j]
        prev[j] = s2[j] - a * a / ww
    stack = np.empty((4 * (int(math.log2(m + 1)) + 4), 4), dtype=np.int64)
    for c in range(2, k + 1):
        for j in range(m + 1):
            cur[j] = np.inf
        # solve cur[j] for j in [c, m]; candidate i in [c-1, j-1]
        sp = 0
        stack[0, 0] = c
        stack[0, 1] = m
        stack[0, 2] = c - 1
        stack[0, 3] = m - 1
        sp = 1
        while sp > 0:
            sp -= 1
            jlo = stack[sp, 0]
            jhi = stack[sp, 1]
            ilo = stack[sp, 2]
            ihi = stack[sp, 3]
            if jlo > jhi:
                continue
            j = (jlo + jhi) >> 1
            best = np.inf
            besti = ilo
            top = min(ihi, j - 1)
            wj = w[j]
            aj = s1[j]
            bj = s2[j]
            for i in range(ilo, top + 1):
                ww = wj - w[i]
                a = aj - s1[i]
                cost = prev[i] + (bj - s2[i]) - a * a / ww
                if cost < best:
                    best = cost
                    besti = i
            cur[j] = best
            split[c, j] = besti
            # left half: j' < j -> i' <= besti ; right half: j' > j -> i' >= besti
            stack[sp, 0] = jlo
            stack[sp, 1] = j - 1
            stack[sp, 2] = ilo
            stack[sp, 3] = besti
            sp += 1
            stack[sp, 0] = j + 1
            stack[sp, 1] = jhi
            stack[sp, 2] = besti
            stack[sp, 3] = ihi
            sp += 1
        for j in range(m + 1):
            prev[j] = cur[j]
    starts = np.empty(k + 1, dtype=np.int64)
    starts[k] = m
    j = m
    for c in range(k, 1, -1):
        j = split[c, j]
        starts[c - 1] = j
    starts[0] = 0
    return starts, prev[m]
