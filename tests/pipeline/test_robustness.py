"""Runs that never lie (issue 14): content-keyed reruns, output faults, signals, the folder
lock, no network at run time, bounded study files, and ``check`` = ``run`` without computing.

Every case builds the small heterogeneous study of ``pipeline_helpers`` (one combination,
one analysis, Zarr + CSV) so a full run takes a few seconds.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from pipeline_helpers import GRID, study_dict
from rasterio.transform import from_origin

from carbonsink.errors import CarbonsinkError, ConfigError, InputError
from carbonsink.pipeline import check, load_study, run_study
from carbonsink.pipeline.outdir import FolderLock, OutputFolderError, stop_on_signals

HERE = Path(__file__).parent


# --------------------------------------------------------------------------- helpers


def small_study(**over) -> dict:
    d = study_dict(**over)
    d.setdefault("models", {})
    if "models" not in over:
        d["models"] = {"combinations": ["modis+pei"]}
    if "analyses" not in over:
        d["analyses"] = ["regional_summary"]
    d["outputs"] = {**d["outputs"], "formats": ["zarr", "csv"], "figures": False,
                    **over.get("outputs", {})}
    return d


def write_region(path: Path, x_split: float = 110.5) -> None:
    """Two polygons A (west) and B (east) of the study grid as GeoJSON with fixed-width
    coordinates, so that moving the split keeps the file size."""
    x0, y0, x1, y1 = GRID["bounds"]

    def poly(name, a, b):
        ring = [[a, y0], [b, y0], [b, y1], [a, y1], [a, y0]]
        coords = ",".join(f"[{x:08.3f},{y:07.3f}]" for x, y in ring)
        return ('{"type":"Feature","properties":{"name":"%s"},"geometry":{"type":"Polygon",'
                '"coordinates":[[%s]]}}' % (name, coords))

    path.write_text('{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":'
                    '"urn:ogc:def:crs:OGC:1.3:CRS84"}},"features":['
                    + poly("A", x0, x_split) + "," + poly("B", x_split, x1) + "]}")


def write_template(path: Path, n: int = 10) -> None:
    x0, y0, x1, y1 = GRID["bounds"]
    res = (x1 - x0) / n
    prof = {"driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "uint8",
            "crs": "EPSG:4326", "transform": from_origin(x0, y1, res, res)}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.zeros((1, n, n), "uint8"))


@pytest.fixture
def folder(hetero_inputs, tmp_path) -> Path:
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    return tmp_path


def put_study(folder: Path, d: dict, name: str = "study.yaml") -> Path:
    p = folder / name
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def snapshot(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name] if folder.exists() else []


def quiet(_msg: str) -> None:
    pass


# --------------------------------------------------------------------------- 1. content keys


def _keys(study: Path) -> dict[str, str]:
    from carbonsink.pipeline.runner import RunContext, step_key
    from carbonsink.pipeline.steps import build_steps

    cfg = load_study(study)
    ctx = RunContext(cfg=cfg, out_dir=study.parent / "unused")
    out = {}
    for step in build_steps(cfg):
        out[step.name] = ctx.keys[step.name] = step_key(ctx, step)
    return out


def _edit_same_size(path: Path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    raw = path.read_bytes()
    assert old in raw
    st = path.stat()
    path.write_bytes(raw.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert path.stat().st_size == st.st_size


def test_step_keys_follow_file_content(folder):
    write_region(folder / "region.geojson")
    write_template(folder / "template.tif")
    (folder / "zones.geojson").write_bytes((folder / "region.geojson").read_bytes())
    (folder / "lc.csv").write_text("igbp_code,vegetation_type\n1,forest\n")
    d = small_study(grid={"template": "template.tif"},
                    region={"path": "region.geojson", "attribute": "name"},
                    zones={"path": "zones.geojson", "attribute": "name", "label": "province"},
                    models={"combinations": ["modis+pei"],
                            "options": {"casa": {"lc_table": "lc.csv"}}})
    study = put_study(folder, d)
    base = _keys(study)
    assert set(base) >= {"prepare", "flux", "regional_summary", "report"}
    edits = {
        "region": lambda: _edit_same_size(folder / "region.geojson", b"0110.500", b"0110.300"),
        "template": lambda: _rewrite_template(folder / "template.tif"),
        "zones": lambda: _edit_same_size(folder / "zones.geojson", b'"A"', b'"C"'),
        "input": lambda: _edit_same_size(folder / "soc.tif", *_tiff_value_edit(folder)),
        "lookup table": lambda: _edit_same_size(folder / "lc.csv", b"1,forest", b"2,forest"),
    }
    for what, edit in edits.items():
        before = _keys(study)
        edit()
        after = _keys(study)
        changed = {s for s in after if after[s] != before[s]}
        if what == "lookup table":  # read by the models: flux and everything after it
            assert "flux" in changed and "prepare" not in changed, (what, changed)
        else:  # read while preparing: every step reruns
            assert changed == set(after), (what, changed)
    # the cached digest is not fooled by an edit that restores size and mtime
    assert _keys(study) == _keys(study)


def _rewrite_template(path: Path) -> None:
    """Same size and mtime, other content: a 10 x 10 template shifted by one cell."""
    st = path.stat()
    x0, y0, x1, y1 = GRID["bounds"]
    prof = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "uint8",
            "crs": "EPSG:4326", "transform": from_origin(x0 + 0.1, y1, 0.1, 0.1)}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.zeros((1, 10, 10), "uint8"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


def _tiff_value_edit(folder: Path) -> tuple[bytes, bytes]:
    import struct

    old = struct.pack("<f", 30.0) * 4
    return old, struct.pack("<f", 31.0) + old[4:]


def test_region_edit_same_size_reruns_and_changes_the_total(folder):
    write_region(folder / "region.geojson", 110.5)
    d = small_study(region={"path": "region.geojson", "attribute": "name", "values": ["A"]})
    study = put_study(folder, d)
    run_study(study, echo=quiet)
    cells0 = int(_region_cells(folder))
    assert cells0 == 50  # 5 of 10 columns
    _edit_same_size(folder / "region.geojson", b"0110.500", b"0110.300")
    lines: list[str] = []
    run_study(study, echo=lines.append)
    assert not any("up to date" in line for line in lines), lines
    assert int(_region_cells(folder)) == 30  # 3 of 10 columns after the edit


def _region_cells(folder: Path) -> float:
    import xarray as xr

    ds = xr.open_zarr(folder / "results" / "cubes" / "inputs_static.zarr")
    return float(ds["region_mask"].sum())


# --------------------------------------------------------------------------- 2. output faults


@pytest.fixture
def tmpfs(tmp_path):
    """A 3 MB tmpfs (root only); skipped where it cannot be mounted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _remount(mnt: Path, how: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{how}", str(mnt)], check=True)


def test_read_only_folder_at_start(folder, tmpfs):
    out = tmpfs / "results"
    out.mkdir()
    _remount(tmpfs, "ro")
    study = put_study(folder, small_study())
    with pytest.raises(OutputFolderError) as run_err:
        run_study(study, out, echo=quiet)
    with pytest.raises(OutputFolderError) as check_err:
        check(study, out)
    assert str(run_err.value) == str(check_err.value)
    assert "read-only" in str(run_err.value) and str(out) in str(run_err.value)
    assert "\n" not in str(run_err.value)


def test_read_only_midway_and_full_disk(folder, tmpfs):
    out = tmpfs / "results"
    study = put_study(folder, small_study())

    def echo(msg):  # the file system turns read-only while the models run
        if msg.startswith("[2/"):
            _remount(tmpfs, "ro")

    with pytest.raises(OutputFolderError, match=r"cannot write .*Read-only file system.*Fix"):
        run_study(study, out, echo=echo)
    assert not (out / "index.html").exists()
    assert not (out / ".carbonsink" / "flux.json").exists()  # the unfinished step is not current
    _remount(tmpfs, "rw")
    # full disk: a study writing ~700 kB (two combinations, Zarr and NetCDF cubes) into a
    # tmpfs filled up to 600 kB free (above the 512 KiB a run needs to start)
    study = put_study(folder, small_study(
        models={"combinations": ["modis+pei", "modis+gsmsr_bl"]},
        outputs={"formats": ["zarr", "netcdf", "csv"]}))
    filler = tmpfs / "filler"
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    filler.write_bytes(b"\0" * max(0, free - 600_000))
    with pytest.raises(OutputFolderError, match=r"No space left on device.*free disk space"):
        run_study(study, out, echo=quiet, force=True)
    assert not (out / "index.html").exists()
    assert temporaries(out) == []
    filler.unlink()
    ctx = run_study(study, out, echo=quiet)  # and with space again, the run completes
    assert (ctx.out_dir / "index.html").exists()


def test_simulated_enospc_is_one_line_and_leaves_nothing_finished(folder, monkeypatch):
    import errno

    import carbonsink.io.atomic as atomic

    study = put_study(folder, small_study())
    real = atomic._commit

    def commit(tmp, target):
        if "cubes" in str(target) and "inputs" not in str(target):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real(tmp, target)

    monkeypatch.setattr(atomic, "_commit", commit)
    with pytest.raises(OutputFolderError) as err:
        run_study(study, echo=quiet)
    msg = str(err.value)
    assert "\n" not in msg and "No space left on device" in msg and "Fix: free disk" in msg
    out = folder / "results"
    assert not (out / "index.html").exists()
    assert temporaries(out) == []
    assert not (out / ".carbonsink" / "flux.json").exists()
    marker = json.loads((out / ".carbonsink" / "results-folder.json").read_text())
    assert marker["status"] == "failed"


def test_outputs_dir_is_a_file(folder):
    (folder / "results").write_text("mine")
    study = put_study(folder, small_study())
    with pytest.raises(OutputFolderError, match=r"outputs.dir: .*results is a file"):
        check(study)
    with pytest.raises(OutputFolderError, match=r"outputs.dir: .*results is a file"):
        run_study(study, echo=quiet)
    assert (folder / "results").read_text() == "mine"


@pytest.mark.parametrize("key", ["base_dir", "sha256"])
def test_reserved_keys_are_clean_config_errors(folder, key):
    d = small_study()
    d[key] = "/etc"
    study = put_study(folder, d)
    with pytest.raises(ConfigError, match=rf"{key}: unknown key '{key}'"):
        load_study(study)
    r = CliRunner().invoke(_cli(), ["check", str(study)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"unknown key '{key}'" in _stderr(r)


def test_foreign_folder_refused_and_foreign_index_survives_failing_run(folder, monkeypatch):
    out = folder / "results"
    out.mkdir()
    (out / "index.html").write_text("<p>my own page</p>")
    study = put_study(folder, small_study())
    with pytest.raises(OutputFolderError, match="not a carbonsink results folder.*--force"):
        check(study)
    with pytest.raises(OutputFolderError, match="not a carbonsink results folder.*--force"):
        run_study(study, echo=quiet)
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]
    # with --force, a run that fails midway leaves the foreign index.html alone
    import carbonsink.pipeline.steps as steps

    def boom(ctx):
        raise RuntimeError("flux failed")

    monkeypatch.setattr(steps, "step_flux", boom)
    with pytest.raises(RuntimeError, match="flux failed"):
        run_study(study, echo=quiet, force=True)
    assert (out / "index.html").read_text() == "<p>my own page</p>"
    assert temporaries(out) == []


def test_failing_rerun_retires_own_report_before_cubes_change(folder, monkeypatch):
    study = put_study(folder, small_study())
    run_study(study, echo=quiet)
    out = folder / "results"
    assert (out / "index.html").exists()
    d = small_study()
    d["models"]["options"] = {"pei": {"mode": "paper"}}
    put_study(folder, d)
    import carbonsink.pipeline.steps as steps

    def boom(ctx):
        raise RuntimeError("flux failed")

    monkeypatch.setattr(steps, "step_flux", boom)
    with pytest.raises(RuntimeError):
        run_study(study, echo=quiet)
    assert not (out / "index.html").exists()  # no report of older results beside new cubes


# --------------------------------------------------------------------------- 3. signals

_RUNNER = textwrap.dedent("""
    import sys
    from carbonsink.pipeline import run_study
    def echo(m):
        print(m, flush=True)
    run_study(sys.argv[1], echo=echo)
    print("FINISHED", flush=True)
""")


def _start(study: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RUNNER, str(study)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=study.parent)


def _wait_for(proc: subprocess.Popen, prefix: str, timeout: float = 120) -> list[str]:
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"never saw {prefix!r}: {seen} {proc.stderr.read()}")


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted((out / "tables").glob("*.csv"))}


@pytest.mark.slow
def test_sigterm_mid_run_then_rerun_is_identical_and_sigkill_leftovers_go(folder):
    study = put_study(folder, small_study())
    ref = folder / "reference"
    run_study(study, ref, echo=quiet)
    # SIGTERM while the models run
    proc = _start(study)
    _wait_for(proc, "[2/")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err or "KeyboardInterrupt" in err or "RunInterrupted" in err
    out = folder / "results"
    assert not (out / "index.html").exists()
    assert temporaries(out) == []
    marker = json.loads((out / ".carbonsink" / "results-folder.json").read_text())
    assert marker["status"] == "interrupted"
    lines: list[str] = []
    run_study(study, echo=lines.append)
    assert any("read, convert and align inputs: up to date" in x for x in lines)
    got, want = _tables(out), _tables(ref)
    assert list(got) == list(want) and got
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name])
    # SIGKILL leaves temporaries; the next run removes them
    (out / "cubes" / ".monthly.tmp-0123456789ab.zarr").mkdir(parents=True)
    (out / "cubes" / ".monthly.tmp-0123456789ab.zarr" / "chunk").write_bytes(b"x" * 1000)
    d = small_study()
    d["outputs"]["growing_season_months"] = [6, 7]
    put_study(folder, d)
    proc = _start(study)
    _wait_for(proc, "[2/")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    lines = []
    run_study(study, echo=lines.append)
    assert temporaries(out) == []
    assert (out / "index.html").exists()


def test_sigterm_and_sighup_raise_like_sigint():
    from carbonsink.pipeline.outdir import RunInterrupted

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_IGN:
            # started under nohup: an ignored signal stays ignored (documented behaviour)
            with stop_on_signals():
                os.kill(os.getpid(), sig)
                time.sleep(0.2)
            continue
        with pytest.raises(KeyboardInterrupt) as err:
            with stop_on_signals():
                os.kill(os.getpid(), sig)
                time.sleep(1)
        assert isinstance(err.value, RunInterrupted) and err.value.signum == sig
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# --------------------------------------------------------------------------- 4. lock


def test_busy_folder_is_refused_naming_the_holder(folder):
    study = put_study(folder, small_study())
    out = folder / "results"
    (out / ".carbonsink").mkdir(parents=True)
    (out / ".carbonsink" / "results-folder.json").write_text("{}")
    holder = FolderLock(out, {"study": "other-study"})
    holder.acquire(0)
    try:
        before = snapshot(folder)
        with pytest.raises(OutputFolderError, match=rf"in use .*pid {os.getpid()}.*other-study"):
            check(study)
        t0 = time.monotonic()
        with pytest.raises(OutputFolderError, match="in use .*other-study"):
            run_study(study, echo=quiet, lock_wait=1.0)
        assert time.monotonic() - t0 < 30
        assert snapshot(folder) == before
    finally:
        holder.release()


def test_two_studies_never_interleave(folder):
    a = put_study(folder, small_study(name="study-a"), "a.yaml")
    b = put_study(folder, small_study(name="study-b"), "b.yaml")
    proc = _start(a)
    _wait_for(proc, "[1/")
    with pytest.raises(OutputFolderError, match=rf"pid {proc.pid}, study 'study-a'"):
        run_study(b, echo=quiet, lock_wait=0)
    out_a, _ = proc.communicate(timeout=120)
    assert "FINISHED" in out_a
    html = (folder / "results" / "index.html").read_text()
    assert "study-a" in html and "study-b" not in html


# --------------------------------------------------------------------------- 5. no network


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _Counter.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", _Counter.hits
    finally:
        srv.shutdown()


def _raster_vrt(url: str) -> str:
    return (f'<VRTDataset rasterXSize="10" rasterYSize="10"><SRS>EPSG:4326</SRS>'
            f'<GeoTransform>110,0.1,0,35.95,0,-0.1</GeoTransform>'
            f'<VRTRasterBand dataType="Float32" band="1"><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">/vsicurl/{url}/soc.tif</SourceFilename>'
            f'<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>')


def test_vrt_pointing_at_http_server_makes_no_request(folder, http_server):
    url, hits = http_server
    (folder / "soc_remote.tif").write_text(_raster_vrt(url))
    # the test can fail: plain GDAL would fetch the source over HTTP
    with rasterio.Env(GDAL_HTTP_MAX_RETRY=0, CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif"):
        with rasterio.open(folder / "soc_remote.tif") as src:
            with pytest.raises(Exception):
                src.read(1)
    assert hits, "GDAL did not try the server: the test would prove nothing"
    hits.clear()
    d = small_study()
    d["inputs"]["soc"] = {"path": "soc_remote.tif", "units": "t C ha-1", "frequency": "static"}
    study = put_study(folder, d)
    with pytest.raises(InputError, match=r"soc_remote.tif \(inputs.soc.path.*GDAL VRT") as e1:
        check(study)
    with pytest.raises(InputError) as e2:
        run_study(study, echo=quiet)
    assert str(e1.value) == str(e2.value)
    # an OGR VRT named .geojson as the region, and a URL as an input
    (folder / "region.geojson").write_text(
        f'<OGRVRTDataSource><OGRVRTLayer name="r"><SrcDataSource>/vsicurl/{url}/r.geojson'
        '</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>')
    d = small_study(region={"path": "region.geojson"})
    study = put_study(folder, d)
    with pytest.raises(InputError, match=r"region.path.*OGR VRT"):
        check(study)
    d = small_study()
    d["inputs"]["tas"] = {"path": f"/vsicurl/{url}/tas.nc", "variable": "t2m"}
    study = put_study(folder, d)
    with pytest.raises(InputError, match=r"inputs.tas.path.*only local files"):
        run_study(study, echo=quiet)
    assert hits == []
    assert not (folder / "results").exists()


# --------------------------------------------------------------------------- 6. bounded YAML


def test_alias_bomb_refused_by_check_quickly(folder):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    text = "\n".join(levels) + "\nname: bomb\n"
    assert len(text) < 1500
    study = folder / "bomb.yaml"
    study.write_text(text)
    t0 = time.monotonic()
    r = CliRunner().invoke(_cli(), ["check", str(study)])
    assert time.monotonic() - t0 < 10
    err = _stderr(r)
    assert r.exit_code == 2 and "expands to more than" in err and len(err) < 600
    with pytest.raises(ConfigError, match="expands to more than"):
        run_study(study, echo=quiet)


def test_long_error_messages_are_truncated(folder):
    d = small_study()
    d["x" * 50_000] = 1
    study = put_study(folder, d)
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert len(str(err.value)) <= 2100 and "more characters" in str(err.value)


# --------------------------------------------------------------------------- 7. check == run


def _case_study(folder: Path, case: str, monkeypatch) -> tuple[Path, str]:
    """A study that ``run`` rejects before computing; returns it and a text of the message."""
    import geopandas as gpd
    from shapely.geometry import box

    import carbonsink.pipeline.preflight as pf

    gpd.GeoDataFrame({"name": ["A"]}, geometry=[box(110, 35, 110.5, 35.5)],
                     crs="EPSG:4326").to_file(folder / "region.gpkg")
    d = small_study()
    expect = ""
    if case == "grid outside the inputs":
        d["grid"] = {"crs": "EPSG:4326", "resolution": 0.1, "bounds": [10, 10, 11, 11]}
        expect = "does not overlap the target grid"
    elif case == "region attribute":
        d["region"] = {"path": "region.gpkg", "attribute": "nme"}
        expect = "region.attribute.*no attribute 'nme'"
    elif case == "region value":
        d["region"] = {"path": "region.gpkg", "attribute": "name", "values": ["Z"]}
        expect = "region.values.*no feature"
    elif case == "region missing":
        d["region"] = {"path": "nope.gpkg"}
        expect = "nope.gpkg"
    elif case == "option value":
        d["models"]["options"] = {"pei": {"mode": "papr"}}
        expect = r"models.options.pei(\.mode)?: mode='papr' is not valid"
    elif case == "scheduler":
        monkeypatch.setattr(pf, "SCHEDULER_TIMEOUT", "1s")
        d["dask"] = {"scheduler": "tcp://127.0.0.1:9"}
        expect = "dask.scheduler: cannot reach"
    elif case == "missing input":
        d["inputs"]["pr"] = {**d["inputs"]["pr"], "path": "rain/pr_*.tif"}
        expect = r"check inputs.pr.path"
    elif case == "outputs.dir under a file":
        (folder / "afile").write_text("x")
        d["outputs"]["dir"] = "afile/results"
        expect = "afile is a file"
    elif case == "foreign folder":
        (folder / "results").mkdir()
        (folder / "results" / "notes.txt").write_text("mine")
        expect = "not a carbonsink results folder"
    elif case == "raster VRT input":
        (folder / "soc.tif").write_text(_raster_vrt("http://127.0.0.1:9"))
        expect = "inputs.soc.path.*GDAL VRT"
    elif case == "reserved key":
        d["sha256"] = "0" * 64
        expect = "sha256: unknown key"
    return put_study(folder, d), expect


CASES = ["grid outside the inputs", "region attribute", "region value", "region missing",
         "option value", "scheduler", "missing input", "outputs.dir under a file",
         "foreign folder", "raster VRT input", "reserved key"]


@pytest.mark.parametrize("case", CASES)
def test_check_rejects_what_run_rejects_with_the_same_message(folder, case, monkeypatch):
    study, expect = _case_study(folder, case, monkeypatch)
    before = snapshot(folder)
    with pytest.raises(CarbonsinkError) as c:
        check(study)
    with pytest.raises(CarbonsinkError) as r:
        run_study(study, echo=quiet)
    assert type(c.value) is type(r.value)
    assert str(c.value) == str(r.value)
    import re

    assert re.search(expect, str(c.value)), str(c.value)
    assert "<name>" not in str(c.value)
    assert snapshot(folder) == before  # nothing written


# --------------------------------------------------------------------------- 8. CLI


def _cli():
    from carbonsink.cli import main

    return main


def _stderr(r) -> str:
    try:
        return r.stderr
    except ValueError:  # older click mixes the streams
        return r.output


@pytest.mark.parametrize("text", ["name: [", "- a\n- b\n", "a: &a [1, *a]\n", "\t\x00bad"])
def test_cli_study_file_problems_never_print_a_traceback(folder, text):
    study = folder / "s.yaml"
    study.write_text(text)
    for cmd in ("check", "run"):
        r = CliRunner().invoke(_cli(), [cmd, str(study)])
        assert r.exit_code == 2, (cmd, r.output)
        assert "Traceback" not in r.output and _stderr(r).startswith("error: ")


def test_cli_output_folder_problem_and_unexpected_error(folder, monkeypatch):
    (folder / "results").write_text("a file")
    study = put_study(folder, small_study())
    r = CliRunner().invoke(_cli(), ["run", str(study)])
    err = _stderr(r)
    assert r.exit_code == 2 and err.count("\n") == 1 and "is a file" in err
    import carbonsink.pipeline as pipeline

    def bug(*a, **k):
        raise RuntimeError("something odd\nsecond line")

    monkeypatch.setattr(pipeline, "run_study", bug)
    r = CliRunner().invoke(_cli(), ["run", str(study)])
    err = _stderr(r)
    assert r.exit_code == 1 and "Traceback" not in err
    assert "unexpected RuntimeError: something odd" in err and "--debug" in err
    assert "second line" not in err
    r = CliRunner().invoke(_cli(), ["--debug", "run", str(study)])
    assert isinstance(r.exception, RuntimeError)
    monkeypatch.setenv("CARBONSINK_DEBUG", "1")
    r = CliRunner().invoke(_cli(), ["run", str(study)])
    assert isinstance(r.exception, RuntimeError)
