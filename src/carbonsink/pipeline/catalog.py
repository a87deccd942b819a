"""The product catalog: where every product of a results folder lives.

Steps, analyses (through their context) and the report ask the catalog instead of
building paths. Layout (``[<experiment>/]`` only when the study has ``experiments:``)::

    cubes/inputs_<group>.zarr                      aligned inputs (monthly, annual, 8day, static)
    cubes/<experiment>/inputs_<group>.zarr         inputs an experiment changed (held / swapped)
    cubes/[<experiment>/]models/<kind>_<model>.zarr  monthly output of each model
    cubes/[<experiment>/]<combination>/<name>.zarr   monthly, annual, growing_season, analysis cubes
    maps/[<experiment>/][<combination>/]<name>.tif   Cloud-Optimized GeoTIFF
    tables/<name>.{csv,parquet}                      tidy tables (experiment is a column)
    figures/[<experiment>/]<name>.png
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["Catalog", "INPUT_GROUPS"]

INPUT_GROUPS = ("monthly", "annual", "8day", "static")


class Catalog:
    """Paths of the products of one results folder.

    Parameters
    ----------
    root
        The results folder.
    formats
        ``outputs.formats`` of the study (zarr, netcdf, cog, csv, parquet).
    experiments
        The experiment names when the study defines ``experiments:``, else ``None`` (no
        experiment level in the paths).
    """

    def __init__(self, root: str | Path, formats=("zarr", "cog", "csv", "parquet"),
                 experiments: list[str] | None = None):
        self.root = Path(root)
        self.formats = tuple(formats)
        self.experiments = list(experiments) if experiments else None

    # ------------------------------------------------------------------ helpers
    def _prefix(self, experiment: str | None) -> list[str]:
        return [experiment] if (self.experiments and experiment) else []

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the results folder (POSIX separators)."""
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    # ------------------------------------------------------------------ cubes
    def cube_stem(self, name: str, *, combination: str | None = None,
                  experiment: str | None = None) -> str:
        parts = self._prefix(experiment) + ([combination] if combination else []) + [name]
        return "/".join(parts)

    def cube_targets(self, name: str, *, combination: str | None = None,
                     experiment: str | None = None) -> list[Path]:
        """Where a cube is written: Zarr (unless only NetCDF is asked) and/or NetCDF."""
        stem = self.cube_stem(name, combination=combination, experiment=experiment)
        out = []
        if "zarr" in self.formats or "netcdf" not in self.formats:
            out.append(self.root / "cubes" / f"{stem}.zarr")
        if "netcdf" in self.formats:
            out.append(self.root / "cubes" / f"{stem}.nc")
        return out

    def cube(self, name: str, *, combination: str | None = None,
             experiment: str | None = None) -> Path | None:
        """The written cube (Zarr preferred, else NetCDF), or None."""
        stem = self.cube_stem(name, combination=combination, experiment=experiment)
        for ext in (".zarr", ".nc"):
            p = self.root / "cubes" / f"{stem}{ext}"
            if p.exists():
                return p
        return None

    def input_cube(self, group: str, experiment: str | None = None) -> Path | None:
        """Aligned inputs of ``group``; with ``experiment``, the experiment's changed inputs."""
        if experiment is not None and not self.experiments:
            experiment = None
        return self.cube(f"inputs_{group}", experiment=experiment)

    def model_cube_name(self, key: str) -> str:
        return f"models/{key}"

    # ------------------------------------------------------------------ maps, tables, figures
    def map(self, name: str, *, combination: str | None = None,
            experiment: str | None = None) -> Path:
        parts = self._prefix(experiment) + ([combination] if combination else [])
        return self.root.joinpath("maps", *parts, f"{name}.tif")

    def table_targets(self, name: str) -> list[Path]:
        fmts = [f for f in self.formats if f in ("csv", "parquet")] or ["csv"]
        return [self.root / "tables" / f"{name}.{f}" for f in fmts]

    def table(self, name: str) -> Path | None:
        """The written table (Parquet preferred, else CSV), or None."""
        for ext in (".parquet", ".csv"):
            p = self.root / "tables" / f"{name}{ext}"
            if p.exists():
                return p
        return None

    def figure(self, name: str, *, experiment: str | None = None, ext: str = "png") -> Path:
        return self.root.joinpath("figures", *self._prefix(experiment), f"{name}.{ext}")

    @staticmethod
    def kind_of(rel: str) -> str:
        """Product kind of a relative path: cubes, maps, tables, figures, report or other."""
        head = rel.split("/", 1)[0]
        if head in ("cubes", "maps", "tables", "figures"):
            return head
        return "report" if rel.endswith(".html") else "other"
