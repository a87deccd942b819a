"""Datacube alignment: target grids, regridding, masks, pixel areas, temporal tools.

* :class:`GridSpec`, :func:`as_grid` — target grid (CRS + resolution + bounds,
  a template raster, or the grid of an input);
* :func:`regrid`, :func:`align_all` — lazy per-variable reprojection
  (area-weighted average for continuous fields, mode for categorical);
* :func:`pixel_area` — cell areas in m²;
* :func:`region_mask`, :func:`zone_labels`, :func:`clip` — polygons → masks and labelled zones;
  :func:`landcover_mask`, :func:`reclassify` — land-cover classes;
* :mod:`carbonsink.cube.temporal` — composites → months, months → years and
  growing seasons, period checks;
* :func:`climatology`, :func:`hold_constant`, :func:`anomalies` — calendar-month
  climatology, a driver with its interannual variation removed (sensitivity runs),
  departures from the climatology.
"""

import rioxarray  # noqa: F401  (registers the .rio accessor)

from .align import RESAMPLING_METHODS, align_all, regrid, valid_area, valid_fraction
from .area import R_AUTHALIC, is_equal_area, pixel_area
from .grid import GridSpec, as_grid
from .landcover import class_labels, landcover_mask, landcover_table, reclassify
from .mask import (clip, polygon_fractions, read_regions, region_mask, zone_labels,
                   zone_names)
from .temporal import (anomalies, check_period, climatology, composite_starts,
                       composites_to_monthly, growing_season, hold_constant, to_annual,
                       to_monthly)

__all__ = [
    "GridSpec", "as_grid", "regrid", "align_all", "valid_fraction", "valid_area",
    "RESAMPLING_METHODS",
    "pixel_area",
    "is_equal_area", "R_AUTHALIC", "region_mask", "zone_labels", "zone_names",
    "polygon_fractions", "clip",
    "read_regions", "landcover_mask",
    "reclassify", "landcover_table", "class_labels", "composites_to_monthly", "to_monthly",
    "to_annual", "growing_season", "check_period", "composite_starts", "climatology",
    "hold_constant", "anomalies",
]
