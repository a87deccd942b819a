"""Pixel statistics engine (carbonsink docs/methods.md §6): trends, significance classes, stability,
persistence, correlation, partial correlation and
multiple regression.

Every function takes xarray objects with a time dimension (``dim="time"``),
returns xarray objects, and stays lazy for dask-backed input (time is made one
chunk, space chunks are kept).  The work is done by numba kernels vectorised
along the time axis (``carbonsink.stats._kernels``); NumPy-backed input is
spread over :func:`get_num_threads` threads, dask input over the dask
scheduler's workers.  No Python loop runs over pixels.

NaN policy: each function takes ``skipna`` and ``min_valid``; missing values
are dropped pairwise (complete cases for several variables); pixels with fewer
than ``min_valid`` valid values, and all-NaN pixels, give NaN without warnings.
Float32 input gives float32 statistics (computed in float64, except the
Theil–Sen pairwise slopes, formed in the input precision: see ``mann_kendall``);
other input gives float64.
"""

from ._parallel import get_num_threads, set_num_threads
from .classes import (CLASS_FILL, class_area_shares, class_labels, ols_four_classes,
                      ols_six_classes, sen_mk_classes, sink_source_classes)
from .correlation import dominant_driver, fdr_bh, partial_correlation, pearson, spearman
from .persistence import hurst_rs, persistence_classes
from .regression import multiple_regression
from .trend import MK_VARIANTS, mann_kendall, ols_trend
from .variability import (CV_CLASS_LABELS, classify, coefficient_of_variation, cv_classes,
                          natural_breaks)
from .windows import calendar_years, expanding_slopes, window_slopes

__all__ = [
    "ols_trend", "mann_kendall", "MK_VARIANTS",
    "sen_mk_classes", "ols_six_classes", "ols_four_classes", "sink_source_classes",
    "class_area_shares", "class_labels", "CLASS_FILL",
    "coefficient_of_variation", "natural_breaks", "classify", "cv_classes", "CV_CLASS_LABELS",
    "hurst_rs", "persistence_classes",
    "pearson", "spearman", "partial_correlation", "dominant_driver", "fdr_bh",
    "multiple_regression",
    "window_slopes", "expanding_slopes", "calendar_years",
    "get_num_threads", "set_num_threads",
]
