"""The valid fraction of an input sliced from its file's lattice is taken from the scratch
copy the prepare step writes (not by decompressing the file again); it must equal the
fraction computed from the file, here with permanent gaps in two such inputs."""

from __future__ import annotations

import numpy as np
import xarray as xr
from pipeline_helpers import demo_study_file

from carbonsink.pipeline import run_study, steps
from carbonsink.pipeline.config import load_study


def _gap(path, var, rows, cols, chunks=None):
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    enc = {v: {k: x for k, x in ds[v].encoding.items()
               if k in ("dtype", "scale_factor", "add_offset", "_FillValue", "chunksizes",
                        "zlib", "complevel")} for v in ds.data_vars}
    da = ds[var]
    hole = xr.zeros_like(da, dtype=bool)
    hole[..., rows, cols] = True
    ds[var] = da.where(~hole)
    if chunks is not None:
        enc[var].update(chunksizes=chunks, zlib=True)
    path.unlink()
    ds.to_netcdf(path, encoding=enc)


def test_valid_fraction_of_sliced_inputs_from_the_scratch_copy(tmp_path, monkeypatch):
    study = demo_study_file(tmp_path)
    inputs = study.parent
    _gap(inputs / "climate.nc", "tas", slice(2, 4), slice(0, 3))
    # composites stored a year per chunk, in 6 x 6 cells (staged in chunks of their own)
    _gap(inputs / "modis_gpp_8day.nc", "Gpp", slice(8, 11), slice(9, 12), chunks=(46, 6, 6))
    asked: list[set[str]] = []
    direct_fn = steps.input_fractions

    def spy(cfg, arrays, grid):
        asked.append(set(arrays))
        return direct_fn(cfg, arrays, grid)

    monkeypatch.setattr(steps, "input_fractions", spy)
    run_study(study, tmp_path / "out", echo=lambda s: None)
    monkeypatch.undo()
    # the staged time series (file blocks of 12 months / 46 composites) came from scratch
    assert asked and not ({"tas", "gpp_8day", "ndvi"} & asked[0]), asked
    got = xr.open_zarr(tmp_path / "out" / "cubes" / "inputs_static.zarr")["valid_fraction"]
    cfg = load_study(study)
    arrays = steps.read_inputs(cfg)
    ref = None
    for f in steps.input_fractions(cfg, arrays, steps.target_grid(cfg, arrays)).values():
        f = f.drop_vars("spatial_ref", errors="ignore").compute()
        ref = f if ref is None else np.minimum(ref, f)
    assert (got.values[2:4, 0:3] == 0).all() and (got.values[8:11, 9:12] == 0).all()
    assert float(got.max()) == 1.0
    np.testing.assert_array_equal(got.values, ref.values)
