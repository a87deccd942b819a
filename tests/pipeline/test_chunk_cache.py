"""During a study run NetCDF files keep a bounded chunk cache (memory independent of the
region's size), and the process's setting is restored afterwards."""

import netCDF4

from carbonsink.io.netcdf import RUN_CHUNK_CACHE, bounded_chunk_cache


def test_bounded_and_restored():
    before = netCDF4.get_chunk_cache()
    with bounded_chunk_cache():
        assert netCDF4.get_chunk_cache()[0] == RUN_CHUNK_CACHE < before[0]
    assert netCDF4.get_chunk_cache() == before
    try:
        with bounded_chunk_cache(1 << 20):
            assert netCDF4.get_chunk_cache()[0] == 1 << 20
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert netCDF4.get_chunk_cache() == before


def test_run_study_reads_inside_the_bounded_cache(tmp_path, monkeypatch):
    from pipeline_helpers import demo_study_file

    import carbonsink.io.netcdf as nc
    from carbonsink.pipeline import run_study

    seen = []
    orig = nc._open_dataset

    def spy(path, engine):
        seen.append(netCDF4.get_chunk_cache()[0])
        return orig(path, engine)

    monkeypatch.setattr(nc, "_open_dataset", spy)
    study = demo_study_file(tmp_path, 12, analyses={},
                            outputs={"dir": "results", "formats": ["zarr"], "figures": False})
    run_study(study, tmp_path / "out", echo=lambda s: None)
    assert seen and set(seen) == {RUN_CHUNK_CACHE}
