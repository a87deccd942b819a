"""Analyses built on NPP, Rh and NEP cubes, as plug-ins (see :mod:`carbonsink.analysis.base`).

Built in: ``regional_summary``, ``landcover_summary``, ``sink_classes``, ``trends``,
``tower_validation`` and ``capacity``; ``carbonsink analyses`` lists them with their options.
Every module of this package is imported when the registry is first used, so a new module
with a ``@register_analysis`` class is all it takes to add an analysis. Tower validation
functions live in :mod:`carbonsink.analysis.validation`.
"""

from .base import (
    ANALYSES,
    BASE_EXPERIMENT,
    DRIVERS,
    TIDY_COLUMNS,
    Analysis,
    AnalysisContext,
    AnalysisResult,
    CubeProduct,
    MemoryContext,
    NoOptions,
    analysis_names,
    describe_analyses,
    get_analysis,
    register_analysis,
    run_analysis,
    tidy,
    validate_options,
)

__all__ = ["Analysis", "AnalysisResult", "AnalysisContext", "MemoryContext", "CubeProduct",
           "NoOptions", "register_analysis", "get_analysis", "analysis_names", "run_analysis",
           "describe_analyses", "validate_options", "tidy", "ANALYSES", "TIDY_COLUMNS",
           "BASE_EXPERIMENT", "DRIVERS"]
