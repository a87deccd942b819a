"""Helpers for the io tests: write small files in the real formats."""

from __future__ import annotations

import contextlib
from pathlib import Path

import dask
import numpy as np
import rasterio
from rasterio.transform import from_origin

from carbonsink.testing import shared_data_dir
from carbonsink.testing.modis import (  # noqa: F401  (re-exported for the io tests)
    SDS_ATTRS,
    R,
    T,
    modis_name,
    tile_corners,
    write_modis,
)

#: the real-data folder beside the project checkout (../shared/data)
SHARED_DATA = shared_data_dir()


class ComputeForbidden(RuntimeError):
    pass


def _forbidden(*args, **kwargs):
    raise ComputeForbidden("dask compute was triggered while reading")


@contextlib.contextmanager
def forbid_compute():
    """Any dask compute inside this block raises ComputeForbidden."""
    with dask.config.set(scheduler=_forbidden):
        yield


# --------------------------------------------------------------------------- GeoTIFF


def write_tif(path: Path, data: np.ndarray, *, crs="EPSG:4326", transform=None, nodata=None,
              tags: dict | None = None, band_tags: list[dict] | None = None,
              descriptions: list[str] | None = None, scales=None, offsets=None) -> Path:
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    count, h, w = data.shape
    transform = transform or from_origin(100.0, 45.0, 0.5, 0.5)
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=count,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
        for i, bt in enumerate(band_tags or [], start=1):
            dst.update_tags(i, **bt)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        if scales is not None:
            dst.scales = tuple(scales)
        if offsets is not None:
            dst.offsets = tuple(offsets)
    return path


# --------------------------------------------------------------------------- MODIS HDF4
# (the writer lives in carbonsink.testing.modis so that other test folders can use it)

def no_temp_left(directory: Path) -> bool:
    return not [p for p in Path(directory).rglob("*") if ".tmp-" in p.name]
