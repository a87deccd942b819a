"""The offline HTML report (``index.html``) that links every output of a run."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jinja2

from ..io.atomic import atomic_write

__all__ = ["write_index"]


def _env() -> jinja2.Environment:
    text = resources.files("carbonsink.report").joinpath("templates/index.html.j2").read_text()
    env = jinja2.Environment(autoescape=jinja2.select_autoescape(["html"]))
    env.globals["_template"] = text
    return env


def _rel(paths, root: Path) -> list[str]:
    out = []
    for p in paths:
        try:
            out.append(str(Path(p).resolve().relative_to(root.resolve())))
        except ValueError:
            out.append(str(p))
    return sorted(set(out))


def _summary_html(root: Path) -> str:
    from ..pipeline.steps import read_result_table

    df = read_result_table(root, "regional_annual")
    if df is None:
        return "<p>(no regional table)</p>"
    nep = df[df["variable"] == "nep"]
    tab = nep.groupby("combination").agg(
        mean_NEP_g_C_m2_yr=("mean_g_C_m2_yr", "mean"),
        min_year_mean=("mean_g_C_m2_yr", "min"),
        max_year_mean=("mean_g_C_m2_yr", "max"),
        mean_total_Tg_C_yr=("total_Tg_C_yr", "mean"),
    ).round(2)
    return tab.to_html(classes="summary")


def _trend_html(root: Path) -> str:
    from ..pipeline.steps import read_result_table

    df = read_result_table(root, "regional_trends")
    if df is None:
        return "<p>(no trend analysis in this run)</p>"
    cols = ["combination", "variable", "ols_slope_g_C_m2_yr2", "ols_p",
            "sen_slope_g_C_m2_yr2", "mk_z", "mk_p", "n_years"]
    return df[cols].round(4).to_html(index=False, classes="summary")


def write_index(ctx, path: str | Path) -> Path:
    """Render ``index.html`` for a finished run described by ``ctx`` (a RunContext)."""
    from ..pipeline.provenance import provenance
    from ..pipeline.steps import selected_combinations, target_grid

    root = ctx.out_dir
    outs = [p for step, paths in ctx.outputs.items() for p in paths if step != "report"]
    rel = _rel(outs, root)
    combos = selected_combinations(ctx.cfg)
    try:
        g = target_grid(ctx.cfg)
        grid = f"{g.shape[0]} × {g.shape[1]} cells, CRS {g.crs}, resolution {g.resolution}"
    except Exception:  # grid.like needs the inputs; the report does not re-read them
        grid = f"the grid of input '{ctx.cfg.grid.like}'"
    env = _env()
    tpl = env.from_string(env.globals["_template"])
    html = tpl.render(
        study=ctx.cfg,
        prov=provenance(ctx.cfg, "report"),
        grid=grid,
        combinations=combos,
        summary_table=_summary_html(root),
        trend_table=_trend_html(root),
        figures=[p for p in rel if p.endswith(".png")],
        tables=[p for p in rel if p.endswith((".csv", ".parquet"))],
        maps=[p for p in rel if p.endswith(".tif")],
        cubes=[p for p in rel if p.endswith((".zarr", ".nc"))],
        models=json.dumps({"combinations": combos, "options": ctx.cfg.models.options},
                          sort_keys=True),
        timings=json.dumps({k: round(v, 2) for k, v in ctx.timings.items()}),
    )
    with atomic_write(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return Path(path)
