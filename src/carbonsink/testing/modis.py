"""Write small MODIS HDF4-EOS tiles with pyhdf, carrying the products' real attributes.

Used by the tests (readers, pipeline) to exercise the MODIS code path on files in the real
format without downloading any product: StructMetadata.0 (sinusoidal grid, tile corners),
CoreMetadata.0 (short name, date range) and per-SDS ``_FillValue``, ``valid_range``,
``scale_factor``, ``units`` as MOD17 / MOD13 collection 6.1 ship them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["R", "T", "SDS_ATTRS", "tile_corners", "write_modis", "modis_name"]

# MODIS sinusoidal grid constants (MODIS Land grid documentation)
from .._constants import MODIS_SPHERE_RADIUS as R  # noqa: E402  (the one definition)
T = 1111950.5197665  # tile width in metres = 2*pi*R/36


_STRUCT = """GROUP=SwathStructure
END_GROUP=SwathStructure
GROUP=GridStructure
\tGROUP=GRID_1
\t\tGridName="{grid}"
\t\tXDim={nx}
\t\tYDim={ny}
\t\tUpperLeftPointMtrs=({ulx:.6f},{uly:.6f})
\t\tLowerRightMtrs=({lrx:.6f},{lry:.6f})
\t\tProjection=GCTP_SNSOID
\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)
\t\tSphereCode=-1
\t\tGridOrigin=HDFE_GD_UL
\t\tGROUP=Dimension
\t\tEND_GROUP=Dimension
\t\tGROUP=DataField
{fields}\t\tEND_GROUP=DataField
\t\tGROUP=MergedFields
\t\tEND_GROUP=MergedFields
\tEND_GROUP=GRID_1
END_GROUP=GridStructure
GROUP=PointStructure
END_GROUP=PointStructure
END
"""

_FIELD = """\t\t\tOBJECT=DataField_{i}
\t\t\t\tDataFieldName="{name}"
\t\t\t\tDataType={dtype}
\t\t\t\tDimList=("YDim","XDim")
\t\t\tEND_OBJECT=DataField_{i}
"""

_CORE = """
GROUP                  = INVENTORYMETADATA
  GROUPTYPE            = MASTERGROUP

  GROUP                  = COLLECTIONDESCRIPTIONCLASS

    OBJECT                 = SHORTNAME
      NUM_VAL              = 1
      VALUE                = "{short}"
    END_OBJECT             = SHORTNAME

    OBJECT                 = VERSIONID
      NUM_VAL              = 1
      VALUE                = 61
    END_OBJECT             = VERSIONID

  END_GROUP              = COLLECTIONDESCRIPTIONCLASS

  GROUP                  = RANGEDATETIME

    OBJECT                 = RANGEBEGINNINGDATE
      NUM_VAL              = 1
      VALUE                = "{begin}"
    END_OBJECT             = RANGEBEGINNINGDATE

    OBJECT                 = RANGEENDINGDATE
      NUM_VAL              = 1
      VALUE                = "{end}"
    END_OBJECT             = RANGEENDINGDATE

  END_GROUP              = RANGEDATETIME

END_GROUP              = INVENTORYMETADATA

END
"""

# SDS attributes as the products carry them (MOD17 v061 / MOD13 v061)
SDS_ATTRS = {
    "MOD17A3HGF": {
        "grid": "MOD_Grid_MOD17A3H",
        "sds": {
            "Npp_500m": dict(dtype="int16", long_name="MODIS Net Primary Production (NPP) "
                             "annual", units="kg C/m^2/year", valid_range=(-30000, 32700),
                             fill=32767, scale=0.0001),
            "Gpp_500m": dict(dtype="uint16", long_name="MODIS Gross Primary Production (GPP) "
                             "annual", units="kg C/m^2/year", valid_range=(0, 65500),
                             fill=65535, scale=0.0001),
            "Npp_QC_500m": dict(dtype="uint8", long_name="Quality control", units="percent",
                                valid_range=(0, 100), fill=255, scale=None),
        },
    },
    "MOD17A2H": {
        "grid": "MOD_Grid_MOD17A2H",
        "sds": {
            "Gpp_500m": dict(dtype="int16", long_name="Gross Primary Productivity",
                             units="kgC/m^2", valid_range=(0, 30000), fill=32767, scale=0.0001),
            "PsnNet_500m": dict(dtype="int16", long_name="Net Photosynthesis",
                                units="kgC/m^2", valid_range=(-30000, 30000), fill=32767,
                                scale=0.0001),
        },
    },
    "MOD13A3": {
        "grid": "MOD_Grid_monthly_1km_VI",
        "sds": {
            "1 km monthly NDVI": dict(dtype="int16", long_name="1 km monthly NDVI",
                                      units="NDVI", valid_range=(-2000, 10000), fill=-3000,
                                      scale=10000.0),
            "1 km monthly EVI": dict(dtype="int16", long_name="1 km monthly EVI",
                                     units="EVI", valid_range=(-2000, 10000), fill=-3000,
                                     scale=10000.0),
        },
    },
}

_DFNT = {"int16": "DFNT_INT16", "uint16": "DFNT_UINT16", "uint8": "DFNT_UINT8",
         "int8": "DFNT_INT8"}


def tile_corners(h: int, v: int) -> tuple[float, float, float, float]:
    """(ulx, uly, lrx, lry) of MODIS tile h, v in metres."""
    ulx = (h - 18) * T
    uly = (9 - v) * T
    return ulx, uly, ulx + T, uly - T


def write_modis(path: Path, product: str, data: dict[str, np.ndarray], *, h: int = 26,
                v: int = 4, begin: str = "2019-01-01", end: str = "2019-12-31",
                short: str | None = None, attrs_override: dict | None = None) -> Path:
    """Write a small MODIS HDF4-EOS tile with pyhdf, with the product's attributes."""
    from pyhdf.SD import SD, SDC

    spec = SDS_ATTRS[product]
    ny, nx = next(iter(data.values())).shape
    ulx, uly, lrx, lry = tile_corners(h, v)
    fields = "".join(_FIELD.format(i=i, name=n, dtype=_DFNT[spec["sds"][n]["dtype"]])
                     for i, n in enumerate(data, start=1))
    struct = _STRUCT.format(grid=spec["grid"], nx=nx, ny=ny, ulx=ulx, uly=uly, lrx=lrx, lry=lry,
                            fields=fields)
    sdc_type = {"int16": SDC.INT16, "uint16": SDC.UINT16, "uint8": SDC.UINT8,
                "int8": SDC.INT8}
    f = SD(str(path), SDC.WRITE | SDC.CREATE)
    try:
        f.attr("StructMetadata.0").set(SDC.CHAR, struct)
        f.attr("CoreMetadata.0").set(SDC.CHAR, _CORE.format(short=short or product,
                                                            begin=begin, end=end))
        f.attr("ArchiveMetadata.0").set(SDC.CHAR, "GROUP = ARCHIVEDMETADATA\nEND_GROUP = "
                                                  "ARCHIVEDMETADATA\nEND\n")
        for name, arr in data.items():
            a = dict(spec["sds"][name])
            a.update((attrs_override or {}).get(name, {}))
            t = sdc_type[a["dtype"]]
            s = f.create(name, t, arr.shape)
            s.dim(0).setname(f"YDim:{spec['grid']}")
            s.dim(1).setname(f"XDim:{spec['grid']}")
            s.setfillvalue(a["fill"])
            s[:] = np.asarray(arr, dtype=a["dtype"])
            s.attr("long_name").set(SDC.CHAR, a["long_name"])
            s.attr("units").set(SDC.CHAR, a["units"])
            s.attr("valid_range").set(t, list(a["valid_range"]))
            if a["scale"] is not None:
                s.attr("scale_factor").set(SDC.FLOAT64, float(a["scale"]))
                s.attr("scale_factor_err").set(SDC.FLOAT64, 0.0)
                s.attr("add_offset").set(SDC.FLOAT64, 0.0)
                s.attr("add_offset_err").set(SDC.FLOAT64, 0.0)
                s.attr("calibrated_nt").set(SDC.INT32, 5)
            s.endaccess()
    finally:
        f.end()
    return path


def modis_name(product: str, year: int, doy: int, h: int, v: int) -> str:
    return f"{product}.A{year}{doy:03d}.h{h:02d}v{v:02d}.061.2020220162300.hdf"


