"""Readers and writers of carbonsink.

Readers return xarray objects with dims ``(time, y, x)`` (or ``(y, x)``), a
CRS (rioxarray ``spatial_ref``), a ``units`` attribute where known, and are
lazy (dask: chunked over space, time whole) where the format allows.
Writers are atomic: they write a temporary file or directory beside the
target and rename it when complete (:func:`atomic_write`).

=====================  =====================================================
``read_input``         dispatch on suffix (GeoTIFF, NetCDF, Zarr, MODIS HDF4)
``read_geotiff``       one GeoTIFF, single band or a dated multi-band stack
``read_geotiff_series``one GeoTIFF per time step, dates from the file names
``read_netcdf``        NetCDF (CF time, grid_mapping or lat/lon)
``read_zarr``          Zarr v2/v3 (as NetCDF)
``read_cube``          a whole written cube (Zarr/NetCDF) as a lazy Dataset
``read_modis_hdf``     MODIS HDF4-EOS tiles: decode, georeference, mosaic
``read_clm_history``   CLM5/CTSM history files (period totals from time_bounds)
``read_cmip``          CMIP5/CMIP6 CMOR files in their model calendar
``write_netcdf``       NetCDF-4, CF-1.8 attributes + provenance
``write_zarr``         Zarr, CF-1.8 attributes + provenance
``write_zarr_many``    several Zarr stores in one dask computation (atomic)
``write_cog``          one layer as Cloud-Optimized GeoTIFF
``write_table``        tidy table as CSV (+ JSON sidecar) or Parquet
``read_table``         read a table and its metadata back
=====================  =====================================================
"""

from .atomic import atomic_write
from .clm import CLM_VARIABLES, read_clm_history
from .cmip import CMIP_VARIABLES, read_cmip
from .dispatch import SUPPORTED_SUFFIXES, read_input
from .geotiff import parse_date, read_geotiff, read_geotiff_series, write_cog
from .modis import PRODUCTS, modis_grid, read_modis_hdf
from .netcdf import read_cube, read_netcdf, read_zarr, write_netcdf, write_zarr, write_zarr_many
from .tables import read_table, sidecar_path, write_table

__all__ = [
    "atomic_write",
    "read_input",
    "SUPPORTED_SUFFIXES",
    "read_geotiff",
    "read_geotiff_series",
    "parse_date",
    "write_cog",
    "read_modis_hdf",
    "modis_grid",
    "PRODUCTS",
    "read_clm_history",
    "CLM_VARIABLES",
    "read_cmip",
    "CMIP_VARIABLES",
    "read_netcdf",
    "read_zarr",
    "read_cube",
    "write_netcdf",
    "write_zarr",
    "write_zarr_many",
    "write_table",
    "read_table",
    "sidecar_path",
]
