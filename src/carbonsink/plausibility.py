"""Plausibility checks of input data against each variable's plausible range.

Every canonical variable (:data:`carbonsink.units.VARIABLES`) has a plausible
range in canonical units (``valid_range``, per month for fluxes). Values far
outside it are rarely real: they are mostly a *unit slip* or an *undeclared
fill value*. :func:`check_values` reads a sample of a (lazy) input already
converted to canonical units and looks for, in this order:

* **non-finite values** (±inf): every one breaks sums and means;
* **an empty input**: no valid value at all (all NaN);
* **unknown class codes** (categorical inputs, e.g. land cover, given the
  codes of the scheme);
* **undeclared fill values**: one exact value repeated outside the range, either a
  common fill value (``-9999``, ``32767``, ``65535``, ``-3.4e38`` ... in the file's
  units) or farther from the range than its width while the other values are in it;
* **negative values** of a variable that cannot be negative (lower bound 0:
  precipitation, radiation, PET, GPP, Rh, SOC ...; NPP and NEP may be negative);
* **a unit slip**: the robust magnitude of the sample (1st/99th percentiles)
  lies outside the range, or in a vanishing part of it, and one typical factor
  brings 99 % of the values into range with a magnitude close to the
  variable's typical one::

      f* = argmin_f |log10(f·m / m_typ)| + penalty_f   s.t.   share_in_range(f·x) ≥ 0.99

  plus a small penalty for the less common slips, with ``m = max(|q01|, |q99|)``
  and the candidates ×10^±1,2,3,4,6 (scale factors applied twice or not at all,
  m vs mm, kg vs g, J vs MJ), ×30.4375^±1 (per day vs per month), ×2.63e6 (per
  second vs per month) and, for temperature, ∓273.15 (K vs °C, always first);
* **other out-of-range values** above a tolerated share, or values implausibly
  small that no typical factor explains.

The sample is a few time steps spread over the record and the seasons (file
blocks shorter than a year are picked by time of year, see ``_sample_steps``)
times a strided spatial subset (at most ``sample`` values), so the check costs a
small read whatever the input size. A lazy input is decompressed a whole chunk
at a time: when the chunks that subset touches would exceed ``SAMPLE_BLOCK_BYTES`` (chunks deep in
time and small in space, e.g. 242 8-day composites x 125 x 150 cells, where a
strided subset touches every spatial chunk), the spatial sample is confined to
``T`` chunks (tiles) forming a Latin hypercube over the grid: each dimension is
cut into ``T`` equal strata, each stratum of each dimension holds one tile (the
chunk of its middle cell) and every tile the same number of cells, so the
sample is self-weighting and its shares (missing, out of range, findings)
estimate those of the whole grid, edges included (the first and the last chunk
row and column are tiles whenever a stratum is at most two chunks wide), without
over-weighting them (Cochran 1977, ch. 5; McKay, Beckman & Conover 1979); about
as many values are read. Each problem becomes a :class:`Finding` naming the
offending share of values, what was found and the fix; :func:`check_values`
raises :class:`~carbonsink.errors.InputError` (``how="raise"``), warns with
:class:`PlausibilityWarning` (``how="warn"``) or only reports.

Reference for the ranges: the ``valid_range`` of each variable in
:mod:`carbonsink.units`; for the fill values, the CF conventions (``_FillValue``
defaults) and the GDAL/MODIS product conventions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import xarray as xr

from .errors import InputError, InvalidArgumentError
from .units import get_variable, parse_units, to_units

__all__ = ["check_values", "read_samples", "PlausibilityReport", "Finding", "PlausibilityWarning",
           "TYPICAL_MAGNITUDE", "FILL_VALUES", "DEFAULT_SAMPLE"]

#: default largest number of values read per input
DEFAULT_SAMPLE = 200_000
#: default largest number of time steps read per input
MAX_STEPS = 12
#: time chunks (file blocks) the sample reads at most (see _sample_steps)
CHUNKS_SAMPLED = 4
#: bytes of file blocks (dask chunks) the sample decompresses at most, but at least two time
#: chunks (see _sample_steps) of one spatial chunk each (see _chunk_subset)
SAMPLE_BLOCK_BYTES = 256 << 20

#: fill values products commonly leave undeclared (in the file's units)
FILL_VALUES = (-9999.0, -999.0, -99.0, 9999.0, -99999.0, 99999.0, -32768.0, -32767.0, 32767.0,
               65535.0, 65534.0, 255.0, -3.4028234663852886e38, 3.4028234663852886e38,
               -1.0e20, 1.0e20, 9.969209968386869e36, -1.0e30, 1.0e30)

#: typical magnitude (about the 99th percentile of a year of monthly values over a region) and
#: the least plausible one, per canonical variable in canonical monthly units; a sample whose
#: magnitude is below the least one is taken to be scaled down (e.g. metres labelled mm).
#: Temperature has no least magnitude (0 degC is common).
TYPICAL_MAGNITUDE: dict[str, tuple[float, float | None]] = {
    "pr": (200.0, 2.0), "pet": (150.0, 2.0), "eet": (100.0, 1.0), "sol": (600.0, 20.0),
    "sund": (250.0, 5.0), "hurs": (80.0, 2.0), "ndvi": (0.6, 0.01), "soc": (10.0, 0.05),
    "npp": (150.0, 0.5), "gpp": (300.0, 1.0), "rh": (60.0, 0.5), "rs": (100.0, 0.5),
    "nep": (60.0, 0.5), "tas": (25.0, None),
}

_IN_RANGE = 0.99          # share of values a slip correction must bring into range
_MAX_OUT = 0.01           # tolerated share of out-of-range values without a finding
_DAYS = 30.4375           # mean days per month
_CELL = "sample_cell"     # dimension of the sampled cells of a sample confined to chunks


class PlausibilityWarning(UserWarning):
    """An input failed a plausibility check and the study asked for a warning only."""


@dataclass(frozen=True)
class Finding:
    """One plausibility problem of an input.

    ``kind`` is ``"non_finite"``, ``"empty"``, ``"unknown_codes"``, ``"fill_value"``,
    ``"negative"``, ``"unit_slip"``, ``"too_small"`` (no typical slip explains it) or
    ``"out_of_range"``; ``share`` the offending share of
    the sampled values [1]; ``found`` what was found; ``fix`` how to correct it.
    """

    kind: str
    share: float
    found: str
    fix: str

    def text(self) -> str:
        return f"{100 * self.share:.1f} % of the sampled values: {self.found}. Fix: {self.fix}"


@dataclass(frozen=True)
class PlausibilityReport:
    """What :func:`check_values` found in the sample of one input.

    Shares are of the sampled values [1]: ``share_missing`` NaN, ``share_out_of_range``
    finite values outside the plausible range (fill values and negatives included). The
    sample is self-weighting (strided, or equal cells per chunk of a Latin hypercube of
    chunks), so these shares estimate those of the whole input:
    ``share = n_flagged / n_sampled``.
    ``quantiles`` are the 1st, 50th and 99th percentiles of the finite values [units].
    """

    name: str
    variable: str
    units: str
    valid_range: tuple[float, float]
    n_sampled: int
    n_steps: int
    share_missing: float
    share_out_of_range: float
    quantiles: tuple[float, float, float] | None
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        """One line: the out-of-range share, the median and the sample size."""
        lo, hi = self.valid_range
        med = (f", median {_fmt(self.quantiles[1])} {self.units}"
               if self.quantiles is not None else "")
        return (f"{self.name}: {100 * self.share_out_of_range:.1f} % of {self.n_sampled} sampled "
                f"values outside [{_fmt(lo)}, {_fmt(hi)}] {self.units}{med}, "
                f"{100 * self.share_missing:.1f} % missing")

    def message(self) -> str:
        """The findings as one message naming the input (empty when ``ok``)."""
        if self.ok:
            return ""
        head = (f"{self.name} ({self.variable} in {self.units}, plausible range "
                f"[{_fmt(self.valid_range[0])}, {_fmt(self.valid_range[1])}]) fails the "
                f"plausibility checks")
        if len(self.findings) == 1:
            return f"{head}: {self.findings[0].text()}"
        return head + ":\n  - " + "\n  - ".join(f.text() for f in self.findings)


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return str(v)
    if 1e-3 <= abs(v) < 1e6:
        return f"{v:.4g}"
    return f"{v:.3g}"


# --------------------------------------------------------------------------- sampling


def _sample(da: xr.DataArray, sample: int, time_dim: str) -> tuple[np.ndarray, int]:
    """A few time steps spread over the record times a spatial subset, as numpy (the
    selection of :func:`_sample_index`); a small, bounded read: synchronous, so no thread
    pool is started for it."""
    return _read_samples([da], sample, time_dim, "synchronous")[0]


def read_samples(arrays: Iterable[xr.DataArray], sample: int = DEFAULT_SAMPLE,
                 time_dim: str = "time") -> list[tuple[np.ndarray, int]]:
    """The samples :func:`check_values` reads (values as float64, number of time steps), of
    several inputs in one computation: the bounded reads of different files run on all
    threads (reads of one NetCDF file still take turns on the HDF5 lock). Pass each to
    :func:`check_values` as ``sampled`` with the same ``sample`` and ``time_dim``."""
    return _read_samples(arrays, sample, time_dim, "threads")


def _read_samples(arrays: Iterable[xr.DataArray], sample: int, time_dim: str,
                  scheduler: str) -> list[tuple[np.ndarray, int]]:
    import dask

    sels, steps = [], []
    for da in arrays:
        index, n_steps = _sample_index(da, int(sample), time_dim)
        sels.append(da.isel(index) if index else da)
        steps.append(n_steps)
    lazy = [i for i, s in enumerate(sels) if s.chunks is not None]
    read = dict(zip(lazy, dask.compute(*[sels[i].data for i in lazy], scheduler=scheduler)))
    return [(np.asarray(read[i] if i in read else sels[i].values, dtype=np.float64).ravel(),
             steps[i]) for i in range(len(sels))]


def _sample_index(da: xr.DataArray, sample: int, time_dim: str
                  ) -> tuple[dict[str, np.ndarray | slice | xr.DataArray], int]:
    """The positions the sample reads (for ``da.isel``) and its number of time steps.

    Time: the steps of :func:`_sample_steps`. Space: every ``s``-th cell along each other
    dimension, ``s = ceil((cells / budget) ** (1 / n_dims))`` with ``budget = sample //
    n_steps`` cells per step, so the sample holds at most ``sample`` values. A lazy input
    is read a whole chunk at a time, and that strided subset touches every spatial chunk: for
    chunks deep in time and small in space (8-day composites in 242 steps x 125 x 150 cells)
    the sample would decompress every chunk of the sampled time chunks (GB for 12 steps). When
    the chunks touched cost more than ``SAMPLE_BLOCK_BYTES``, the spatial subset is confined
    to the cells of ``T`` chunks placed as a Latin hypercube over the grid, the same number
    of cells in each (see :func:`_chunk_subset`): the spatial indexers are then pointwise
    (``xarray.DataArray`` along :data:`_CELL`, vectorised indexing), the sample is
    self-weighting, so its shares estimate the grid's without over-weighting any part of it
    (exactly for a pattern constant within each of the ``T`` strata of each dimension), and
    the bytes decompressed stay bounded whatever the chunk layout.
    """
    index: dict[str, np.ndarray | slice | xr.DataArray] = {}
    n_steps = 1
    if time_dim in da.dims:
        index[time_dim] = _sample_steps(da, time_dim)
        n_steps = index[time_dim].size
    spatial = [d for d in da.dims if d != time_dim]
    if not spatial:
        return index, n_steps
    cells = int(np.prod([da.sizes[d] for d in spatial]))
    budget = max(sample // max(n_steps, 1), 1)
    if cells > budget:
        stride = math.ceil((cells / budget) ** (1.0 / len(spatial)))
        index.update({d: slice(None, None, stride) for d in spatial})
    if da.chunks is not None:
        confined = _chunk_subset(da, index, spatial, budget)
        if confined is not None:
            index.update(confined)
    return index, n_steps


def _touched_chunks(idx: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices of the chunks (of lengths ``sizes``) that hold the positions ``idx``."""
    return np.unique(np.searchsorted(np.cumsum(sizes), idx, side="right"))


def _lattice(n_tiles: int, n_dims: int) -> np.ndarray:
    """Stratum of each tile along each spatial dimension, shape ``(n_tiles, n_dims)``.

    Tile ``i`` lies in stratum ``i`` along the first dimension and in stratum ``i g_d mod
    T`` along dimension ``d >= 1`` (``T = n_tiles``), with ``g_d`` the integer coprime with
    ``T`` nearest to ``T frac(d / phi)`` (``phi`` the golden ratio): a rank-1 (Fibonacci-like)
    lattice, so every stratum of every dimension holds exactly one tile (a Latin hypercube
    design, McKay, Beckman & Conover 1979, Technometrics 21, 239-245) and the tiles are
    spread over the plane rather than along a diagonal (Sloan & Joe 1994, *Lattice Methods
    for Multiple Integration*, Oxford).
    """
    i = np.arange(n_tiles, dtype=np.int64)
    out = [i]
    for d in range(1, n_dims):
        target = n_tiles * ((d * 0.6180339887498949) % 1.0)
        coprime = [g for g in range(1, max(n_tiles, 2)) if math.gcd(g, n_tiles) == 1] or [1]
        g = min(coprime, key=lambda c: (abs(c - target), c))
        out.append((i * g) % n_tiles)
    return np.stack(out, axis=1)


def _tile_cells(sizes: np.ndarray, strata: np.ndarray,
                n_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the tiles in ``strata`` (of ``n_tiles`` equal strata of one dimension) place
    their positions: the first cell and the length of an interval inside one chunk [cells].

    Stratum ``s`` covers the cells ``[a, b) = [s L / T, (s + 1) L / T)`` of the ``L`` cells
    of the dimension. Its tile is the chunk holding the stratum's middle cell ``floor((a + b
    - 1) / 2)`` (the lower one for an even count), of first cell ``r`` and length ``c``; the
    positions are placed in ``[f, f + w)`` with ``w = min(b - a, c)`` and ``f = clip(a, r, r +
    c - w)``: the stratum itself when it lies in that chunk, else the whole chunk (a stratum
    wider than a chunk is represented by its middle chunk, a systematic sample with a
    central start, Cochran 1977, *Sampling Techniques*, 3rd ed., Wiley, ch. 8).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    length = int(starts[-1])
    a = strata * length / n_tiles
    b = (strata + 1) * length / n_tiles
    middle = np.clip(np.floor((a + b - 1) / 2), 0, length - 1)
    q = np.searchsorted(starts, middle, side="right") - 1
    r, c = starts[q], sizes[q]
    w = np.minimum(b - a, c)
    return np.clip(a, r, r + c - w), w


def _fit(lengths: np.ndarray, cap: int) -> np.ndarray:
    """Counts ``1 <= k_d <= lengths_d`` with ``prod k_d <= cap``, as close to ``cap`` as a
    share of every dimension allows: ``k_d = floor(lengths_d * g)``, ``g = (cap / prod
    lengths) ** (1 / n_dims)``, each then topped up while the product stays within ``cap``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    g = min(1.0, (cap / float(lengths.prod())) ** (1.0 / lengths.size))
    k = np.ones_like(lengths)
    for i in range(lengths.size):  # the product stays <= cap after every step
        room = cap // int(np.prod(np.delete(k, i)))
        k[i] = max(1, min(lengths[i], int(lengths[i] * g), room))
    for i in range(lengths.size):
        k[i] = max(1, min(lengths[i], cap // int(np.prod(np.delete(k, i)))))
    return k


def _chunk_subset(da: xr.DataArray, index: dict[str, np.ndarray | slice], spatial: list[str],
                  budget: int) -> dict[str, xr.DataArray] | None:
    """Spatial cells confined to a few chunks (tiles) spread over the grid, as pointwise
    indexers along :data:`_CELL`, or None when the chunks the selection ``index`` touches
    cost at most ``SAMPLE_BLOCK_BYTES``.

    Cost of a selection [bytes]: each chunk it touches is decompressed whole, once::

        cost = itemsize * prod_d sum_{c touched along d} size_d(c)

    (the chunks touched are the product of those touched along each dimension). With ``D``
    the steps of the time chunks touched and ``S`` the cells of the largest spatial chunk,
    ``T = max(1, SAMPLE_BLOCK_BYTES // (itemsize * D * S))`` spatial chunks fit in the
    budget. Each spatial dimension (``L_d`` cells) is cut into ``T`` equal strata and the
    ``T`` tiles are placed by :func:`_lattice` so that every stratum of every dimension holds
    exactly one tile (a Latin hypercube of chunks), each tile being the chunk of its
    strata's middle cells (:func:`_tile_cells`). Every tile then holds the same ``prod_d
    k_d <= budget // T`` cells, ``k_d`` evenly spread over its interval along ``d``::

        p_j = floor(f + (j + 1/2) w / k_d),   j = 0 .. k_d - 1

    The sample is self-weighting: each tile stands for ``1/T`` of the grid, and along each
    dimension each stratum (``W = 1/T`` of the axis) holds ``1/T`` of the sampled cells, so
    the plain shares of :func:`check_values` (missing, out of range, findings) weight every
    part of the grid as the grid does: a pattern varying along one dimension (missing values
    along the region's western edge) is estimated as well as its tiles represent their
    strata, exactly when it is constant within each stratum (Cochran 1977, ch. 5,
    proportional allocation; McKay et al. 1979). With few tiles a pattern varying along both
    dimensions (a frame along all four sides) is estimated to about ``1/T``. A design that
    always reads the first and the last chunk row and column instead over-weights the edges
    by about ``n_chunks / m`` for ``m`` chunks read per dimension.
    The first and the last chunk along a dimension are tiles whenever a stratum is at most
    two chunks wide (``T >= n_chunks / 2``), so values confined to an edge chunk row (an
    undeclared fill value along the southern edge) are then sampled. The cost is at most
    ``max(SAMPLE_BLOCK_BYTES, itemsize * D * S)``: one spatial chunk per time chunk is the
    least any sample reads.
    """
    chunks = dict(zip(da.dims, da.chunks))
    item = da.dtype.itemsize

    def touched_cells(d: str) -> int:
        sizes = np.asarray(chunks[d])
        idx = np.arange(da.sizes[d])[index.get(d, slice(None))]
        return int(sizes[_touched_chunks(idx, sizes)].sum())

    depth = int(np.prod([touched_cells(d) for d in da.dims if d not in spatial]))
    cost = item * depth * int(np.prod([touched_cells(d) for d in spatial]))
    if cost <= SAMPLE_BLOCK_BYTES:
        return None
    largest = int(np.prod([max(chunks[d]) for d in spatial]))
    n_blocks = max(1, SAMPLE_BLOCK_BYTES // max(item * depth * largest, 1))
    n_chunks = np.array([len(chunks[d]) for d in spatial])
    if n_blocks >= n_chunks.prod():
        return None
    n_tiles = int(n_blocks)
    strata = _lattice(n_tiles, len(spatial))
    placed = [_tile_cells(np.asarray(chunks[d]), strata[:, j], n_tiles)
              for j, d in enumerate(spatial)]
    # positions per tile along each dimension: at most the narrowest interval holds
    caps = np.array([max(1, int(np.floor(w.min() + 1e-9))) for _, w in placed])
    k = _fit(caps, max(1, budget // n_tiles))
    axes = []
    for j, ((first, width), n) in enumerate(zip(placed, k)):
        pos = np.floor(first[:, None] + (np.arange(int(n))[None, :] + 0.5) * width[:, None]
                       / int(n)).astype(np.int64)
        shape = [n_tiles] + [1] * len(spatial)
        shape[j + 1] = int(n)
        axes.append(pos.reshape(shape))
    grids = np.broadcast_arrays(*axes)
    return {d: xr.DataArray(g.ravel(), dims=_CELL) for d, g in zip(spatial, grids)}


def _sample_steps(da: xr.DataArray, time_dim: str) -> np.ndarray:
    """Up to MAX_STEPS time steps spread over the record and over the seasons.

    For an input read in file order (a chunk of 12 months x the whole grid), reading one
    step decompresses its whole chunk: the steps are then taken from at most CHUNKS_SAMPLED
    chunks, one in each of that many equal strata of the record. A chunk shorter than a
    year covers part of the seasons only (6 eight-day composites: 48 days), so within its
    stratum the chunk whose middle step's time of year lies nearest the stratum's target
    (``(j + 1/2) / n`` of the year for stratum ``j`` of ``n``) is taken: the chunks cover the
    year as they cover the record, and a flux near zero in winter is not sampled in winter
    only (which would read as a unit slip). Within chunk ``j`` the steps are staggered by
    ``j / n`` of their spacing (12-month chunks, 3 steps each: months 1, 5, 9; 2, 6, 10; …
    every month once). Chunks small in space are confined afterwards to a few spatial chunks
    by :func:`_chunk_subset`."""
    nt = da.sizes[time_dim]
    k = min(nt, MAX_STEPS)
    even = np.unique(np.linspace(0, nt - 1, k).round().astype(int))
    if da.chunks is None:
        return even
    sizes = np.asarray(da.chunks[da.dims.index(time_dim)])
    # large blocks (a year of 8-day composites x the whole grid): fewer of them, at least two
    block = int(sizes.max()) * (da.size // max(nt, 1)) * da.dtype.itemsize
    n_chunks = min(CHUNKS_SAMPLED, max(2, SAMPLE_BLOCK_BYTES // max(block, 1)))
    if sizes.size <= n_chunks:
        return even
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    strata = np.array_split(np.arange(sizes.size), n_chunks)
    phase = _year_fraction(da, time_dim, starts + (sizes - 1) // 2)
    if phase is None:  # no calendar: the middle chunk of each stratum
        picked = [int(s[(s.size - 1) // 2]) for s in strata]
    else:
        picked = []
        for j, s in enumerate(strata):
            d = np.abs(phase[s] - (j + 0.5) / n_chunks)
            picked.append(int(s[np.argmin(np.minimum(d, 1.0 - d))]))
    per = max(1, -(-k // n_chunks))
    idx = []
    for j, c in enumerate(picked):
        n = min(per, int(sizes[c]))
        offsets = np.floor((np.arange(n) + j / n_chunks) * sizes[c] / n).astype(int)
        idx.append(starts[c] + np.minimum(offsets, sizes[c] - 1))
    return np.unique(np.concatenate(idx))


def _year_fraction(da: xr.DataArray, time_dim: str, steps: np.ndarray) -> np.ndarray | None:
    """Time of year of ``steps`` as a fraction in [0, 1), or None without a calendar."""
    from ._time import fractional_years

    if time_dim not in da.coords:
        return None
    try:  # datetime64 or cftime dates
        return fractional_years(da[time_dim].isel({time_dim: steps})) % 1.0
    except (AttributeError, TypeError):  # not dates
        return None


def _any_valid(da: xr.DataArray) -> bool:
    """Whether the whole input holds any finite value (used only when the sample holds none)."""
    valid = np.isfinite(da).any()
    return bool(valid.compute(scheduler="synchronous") if valid.chunks is not None else valid)


# --------------------------------------------------------------------------- detectors


def _range_for(var, units: str) -> tuple[float, float, float]:
    """Plausible range and period factor for the units of the data (monthly range × 12 for
    annual totals; an 8-day or daily total is bounded by the monthly range)."""
    lo, hi = var.valid_range
    if not var.is_flux:
        return lo, hi, 1.0
    try:
        period = parse_units(units).period
    except ValueError:
        period = "month"
    if period == "year":
        return lo * 12.0, hi * 12.0, 12.0
    if period is None:
        return lo, hi, 8.0 / _DAYS
    return lo, hi, 1.0


def _raw_of(values: np.ndarray, units: str, source: str | None,
            variable: str) -> np.ndarray | None:
    """Values back in the file's units (None when the conversion needs the time axis)."""
    if not source or source == units:
        return values
    try:
        ab = to_units(np.array([0.0, 1.0]), units, found=source, variable=variable)
    except (ValueError, InputError):
        return None
    a, b = float(ab[1] - ab[0]), float(ab[0])
    if a == 0:
        return None
    return (values - b) / a


def _is_fill(raw: float) -> bool:
    return any(math.isclose(raw, f, rel_tol=1e-6) for f in FILL_VALUES)


def _fill_values(fin: np.ndarray, lo: float, hi: float, units: str, source: str | None,
                 variable: str) -> tuple[np.ndarray, list[float]]:
    """Exact values repeated outside the range that look like fill values."""
    out = fin[(fin < lo) | (fin > hi)]
    if out.size < 2:
        return np.zeros(0), []
    vals, counts = np.unique(out, return_counts=True)
    cand = vals[counts >= max(2, int(1e-4 * fin.size))]
    if cand.size == 0:
        return np.zeros(0), []
    raw = _raw_of(cand, units, source, variable)
    fills = []
    for i, v in enumerate(cand):
        rest = fin[fin != v]
        rest_ok = rest.size > 0 and np.mean((rest >= lo) & (rest <= hi)) >= 0.9
        known = _is_fill(float(v)) or (raw is not None and _is_fill(float(raw[i])))
        far = v < lo - (hi - lo) or v > hi + (hi - lo)
        if known or (rest_ok and far):
            fills.append(float(v))
    if not fills:
        return np.zeros(0), []
    return np.isin(fin, fills), fills


def _magnitude(x: np.ndarray) -> float:
    q = np.percentile(x, [1, 99])
    return float(max(abs(q[0]), abs(q[1])))


def _candidates(variable: str) -> list[tuple[str, float, float, float, str]]:
    """(label, multiply, add, penalty, explanation) of the typical unit slips, where the
    correct value is ``found·multiply + add``; ``penalty`` [decades] ranks the less common
    slips behind the common ones when both bring the values into range."""
    common = {3: 0.0, 1: 0.0, 2: 0.3, 4: 0.5, 6: 0.5}
    if variable == "ndvi":  # MODIS NDVI: the scale factor 0.0001 is the usual suspect
        common.update({4: 0.0, 3: 0.5})
    why = {1: "a scale factor 0.1 applied twice or not at all",
           2: "a scale factor 0.01 applied twice or not at all, or % vs fraction",
           3: "m vs mm, kg vs g, or a scale factor 0.001 applied twice or not at all",
           4: "a scale factor 0.0001 applied twice or not at all (e.g. MODIS NDVI)",
           6: "J vs MJ, or g vs t"}
    out = []
    for k, pen in common.items():
        out.append((f"x{10 ** k:g}", 10.0 ** k, 0.0, pen,
                    f"values {10 ** k:g} times too small: {why[k]}"))
        out.append((f"/{10 ** k:g}", 10.0 ** -k, 0.0, pen,
                    f"values {10 ** k:g} times too large: {why[k]}"))
    if get_variable(variable).is_flux:
        out.append(("x30", _DAYS, 0.0, 0.0, "values about 30 times too small: a daily rate "
                                            "labelled as a monthly total"))
        out.append(("/30", 1 / _DAYS, 0.0, 0.0, "values about 30 times too large: a monthly "
                                                "total labelled as a daily rate"))
        out.append(("x2.63e6", _DAYS * 86400.0, 0.0, 0.3, "values about 2.6e6 times too "
                    "small: a rate per second labelled as a monthly total"))
    if variable == "tas":
        out.append(("-273.15", 1.0, -273.15, -10.0,
                    "values 273.15 too high: kelvin labelled as degC"))
        out.append(("+273.15", 1.0, 273.15, -10.0,
                    "values 273.15 too low: degC labelled as kelvin"))
    return out


def _fixed_units(source: str | None, mult: float, add: float) -> str | None:
    """Units that make the stored values right, from the declared ones (None if unknown)."""
    if not source:
        return None
    try:
        p = parse_units(source)
    except ValueError:
        return None
    text = source.strip()
    if add:
        kelvin = str(p.units) == "kelvin"
        if add < 0 and not kelvin:
            return "K"
        if add > 0 and kelvin:
            return "degC"
        return None
    rest = text
    parts = text.split(None, 1)
    try:
        float(parts[0])
        rest = parts[1] if len(parts) > 1 else ""
    except (ValueError, IndexError):
        pass
    tokens = rest.split()
    swaps = {1e3: {"mm": "m", "g": "kg"}, 1e-3: {"m": "mm", "kg": "g"}}
    for f, table in swaps.items():
        if math.isclose(mult, f) and p.factor == 1.0:
            for i, t in enumerate(tokens):
                base = t.rstrip("-0123456789")
                if base in table and (i == 0 or base != "C"):
                    new = tokens.copy()
                    new[i] = table[base] + t[len(base):]
                    return " ".join(new)
    if math.isclose(mult, _DAYS) and "month-1" in tokens:
        return " ".join("d-1" if t == "month-1" else t for t in tokens)
    if math.isclose(mult, 1 / _DAYS) and "d-1" in tokens:
        return " ".join("month-1" if t == "d-1" else t for t in tokens)
    factor = p.factor * mult
    if math.isclose(factor, 1.0):
        return rest or "1"
    return f"{factor:g} {rest}".strip()


def _unit_slip(x: np.ndarray, variable: str, lo: float, hi: float, typical: float,
               least: float | None, source: str | None, units: str, key: str
               ) -> Finding | None:
    """A typical factor that brings the sample into range, if the sample is out of it."""
    if x.size == 0:
        return None
    inside = np.mean((x >= lo) & (x <= hi))
    mag = _magnitude(x)
    shrunk = least is not None and 0 < mag < least
    if inside >= 1 - _MAX_OUT and not shrunk:
        return None
    best = None
    for label, mult, add, penalty, why in _candidates(variable):
        y = x * mult + add
        share_in = np.mean((y >= lo) & (y <= hi))
        m = _magnitude(y)
        if share_in < _IN_RANGE or (least is not None and m < least) or m == 0:
            continue
        # closeness to the typical magnitude [decades] + how uncommon the slip is (K vs degC
        # first: a tenfold slip can also land 250..310 K in the range of degC)
        score = abs(math.log10(m / typical)) + penalty
        if best is None or score < best[0]:
            best = (score, label, mult, add, why)
    declared = f"declared units {source!r}" if source else "the file's units"
    if best is None:
        if not shrunk:
            return None
        return Finding("too_small", 1.0, f"the 99th percentile of |values| is {_fmt(mag)} "
                       f"{units}, below the least plausible {_fmt(least)} for {variable} "
                       f"(median {_fmt(float(np.median(x)))})",
                       f"give {key}.units: the units the stored values are really in "
                       f"({declared} make them implausibly small; check the scale factor)")
    _, label, mult, add, why = best
    med = float(np.median(x))
    share = float(1 - inside) if not shrunk else 1.0
    what = (f"median {_fmt(med)} and 99th percentile of |values| {_fmt(mag)} {units} for "
            f"{variable} ({why})")
    new = _fixed_units(source, mult, add)
    if new is not None:
        fix = (f"give {key}.units: \"{new}\" (the units the stored values are in; "
               f"{declared} say otherwise)")
    else:
        fix = (f"give {key}.units: the units the stored values are really in (they look "
               f"{label} off from {declared})")
    return Finding("unit_slip", share, what, fix)


# --------------------------------------------------------------------------- entry point


def check_values(da: xr.DataArray, variable: str, *, name: str | None = None,
                 sample: int = DEFAULT_SAMPLE, how: str = "raise",
                 codes: Iterable[int] | None = None, source_units: str | None = None,
                 key: str | None = None, time_dim: str = "time",
                 sampled: tuple[np.ndarray, int] | None = None) -> PlausibilityReport:
    """Check a sample of ``da`` (canonical units of ``variable``) for implausible values.

    Parameters
    ----------
    da : xarray.DataArray
        The input, lazy or in memory, in the canonical units of ``variable``
        (``da.attrs["units"]``; a flux may be per month, per year or per composite).
    variable : str
        Canonical variable (``"tas"``, ``"pr"``, ``"ndvi"``, ``"landcover"`` ...).
    name : str, optional
        How messages name the input (e.g. ``"inputs.tas"``); default ``variable``.
    sample : int
        Largest number of values read: at most 12 time steps spread over the
        record times a strided spatial subset, confined to a few spatial chunks
        (a self-weighting Latin hypercube of chunks, see the module docstring) when
        the chunks it touches would exceed ``SAMPLE_BLOCK_BYTES`` [values].
    how : {"raise", "warn", "report"}
        Raise :class:`~carbonsink.errors.InputError`, warn with
        :class:`PlausibilityWarning`, or only return the report.
    codes : iterable of int, optional
        Valid class codes of a categorical input (land cover: the scheme's codes).
    source_units : str, optional
        The units the file was declared in (for the fix and to recognise fill
        values in the file's units); default ``da.attrs["carbonsink_source_units"]``.
    key : str, optional
        The study key of the input used in fixes (default ``name``).
    sampled : tuple of (numpy.ndarray, int), optional
        The sample of ``da`` already read by :func:`read_samples` (with the same
        ``sample`` and ``time_dim``); default: read here.

    Returns
    -------
    PlausibilityReport
        Shares of missing and out-of-range values, quantiles and the findings.

    Notes
    -----
    Tests follow the module docstring: the unit-slip correction ``f*`` minimises
    ``|log10(f·m / m_typ)|`` over the typical factors among those that bring 99 % of
    the sampled values into the plausible range.
    """
    if how not in ("raise", "warn", "report"):
        raise InvalidArgumentError(f"how must be 'raise', 'warn' or 'report', got {how!r}")
    if not isinstance(sample, (int, np.integer)) or sample < 1:
        raise InvalidArgumentError(f"sample must be a positive number of values, got {sample!r}")
    var = get_variable(variable)
    name = name or var.name
    key = key or name
    units = str(da.attrs.get("units", var.units))
    source = source_units if source_units is not None else da.attrs.get("carbonsink_source_units")
    lo, hi, scale = _range_for(var, units)
    values, n_steps = sampled if sampled is not None else _sample(da, int(sample), time_dim)
    n = values.size
    findings: list[Finding] = []
    nan = np.isnan(values)
    inf = np.isinf(values)
    fin = values[np.isfinite(values)]
    if inf.any():
        findings.append(Finding(
            "non_finite", float(inf.mean()),
            f"{int(inf.sum())} of {n} sampled values are +inf or -inf",
            "declare the value as nodata (_FillValue in NetCDF, nodata in GeoTIFF) or replace "
            "it by NaN in the file"))
    quantiles = None
    share_out = 0.0
    if fin.size == 0 and not inf.any():
        if n == 0 or not _any_valid(da):
            findings.append(Finding(
                "empty", 1.0, f"the input holds no valid value (all {da.size} values are "
                              "missing)",
                f"check {key}.path and {key}.variable, and that the file's nodata is not its "
                "data value"))
    elif fin.size:
        quantiles = tuple(float(q) for q in np.percentile(fin, [1, 50, 99]))
        share_out = float(np.mean((fin < lo) | (fin > hi)) * fin.size / n)
        if var.kind == "categorical":
            if codes is not None:
                valid = np.asarray(sorted({int(c) for c in codes}), dtype=np.float64)
                bad = ~np.isin(fin, valid)
                if bad.any():
                    found = np.unique(fin[bad])
                    shown = ", ".join(_fmt(float(c)) for c in found[:10]) + \
                        (" ..." if found.size > 10 else "")
                    findings.append(Finding(
                        "unknown_codes", float(bad.sum() / n),
                        f"class codes {shown} are not codes of the land-cover scheme "
                        f"(valid: {', '.join(str(int(c)) for c in valid)})",
                        f"give {key}.scheme matching the product, or declare the fill code as "
                        "the file's nodata"))
        else:
            fill_mask, fills = _fill_values(fin, lo, hi, units, source, var.name)
            ok = fin
            if fills:
                raw = _raw_of(np.asarray(fills), units, source, var.name)
                shown = ", ".join(_fmt(v) for v in (raw if raw is not None else fills))
                where = "in the file's units" if raw is not None else units
                findings.append(Finding(
                    "fill_value", float(fill_mask.sum() / n),
                    f"the exact value(s) {shown} ({where}) repeat outside the plausible range: "
                    "undeclared fill values treated as data",
                    "declare them as nodata (_FillValue attribute in NetCDF, nodata in GeoTIFF, "
                    f"e.g. gdal_edit.py -a_nodata {shown.split(',')[0]} FILE) or set them to NaN"))
                ok = fin[~fill_mask]
            tol = 1e-6 * (hi - lo)
            if lo >= 0 and ok.size:
                neg = ok < -tol
                if neg.any():
                    findings.append(Finding(
                        "negative", float(neg.sum() / n),
                        f"{int(neg.sum())} negative values (least {_fmt(float(ok.min()))} "
                        f"{units}) of {var.name}, which cannot be negative",
                        f"correct the sign convention of {key}, or set negative values to 0 or "
                        "NaN in the file"))
                    ok = ok[~neg]
            typical, least = TYPICAL_MAGNITUDE.get(var.name, (max(abs(lo), abs(hi)) / 10, None))
            slip = _unit_slip(ok, var.name, lo, hi, typical * scale,
                              least * scale if least is not None else None, source, units, key)
            if slip is not None:
                findings.append(slip)
            elif ok.size:
                out = (ok < lo - tol) | (ok > hi + tol)
                if out.mean() > _MAX_OUT:
                    findings.append(Finding(
                        "out_of_range", float(out.sum() / n),
                        f"values from {_fmt(float(ok.min()))} to {_fmt(float(ok.max()))} "
                        f"{units} (median {_fmt(float(np.median(ok)))}) for {var.name}",
                        f"check {key}.units and the file's scale factor and nodata"))
    report = PlausibilityReport(name, var.name, units, (lo, hi), n, n_steps,
                                float(nan.mean()) if n else 1.0, share_out, quantiles,
                                tuple(findings))
    if findings and how == "raise":
        raise InputError(report.message())
    if findings and how == "warn":
        warnings.warn(report.message(), PlausibilityWarning, stacklevel=2)
    return report
