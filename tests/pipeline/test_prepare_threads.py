"""The prepare step runs the local scheduler with more threads than cores (its reads wait on
the HDF5 lock and on files); a dask cluster keeps its own workers."""

from __future__ import annotations

import os
from types import SimpleNamespace

import dask

from carbonsink.pipeline import steps


def _seen(monkeypatch, client):
    seen = []
    monkeypatch.setattr(steps, "_prepare",
                        lambda ctx: seen.append(dask.config.get("num_workers", None)) or [])
    steps.step_prepare(SimpleNamespace(client=client))
    return seen[0]


def test_prepare_threads_per_core(monkeypatch):
    with dask.config.set(num_workers=None):
        assert steps.prepare_threads() == steps.PREPARE_THREADS_PER_CORE * os.cpu_count()
        assert _seen(monkeypatch, None) == steps.PREPARE_THREADS_PER_CORE * os.cpu_count()
        assert dask.config.get("num_workers", None) is None  # restored afterwards
    with dask.config.set(num_workers=3):
        assert _seen(monkeypatch, None) == 3 * steps.PREPARE_THREADS_PER_CORE


def test_prepare_on_a_cluster_keeps_the_workers(monkeypatch):
    with dask.config.set(num_workers=None):
        assert _seen(monkeypatch, object()) is None
