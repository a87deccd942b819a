"""Analyses built on NPP, Rh and NEP cubes (attribution, sensitivity, capacity,
resilience, land-cover transitions, scenarios, tower validation).

Submodules are imported on demand (``from carbonsink.analysis import validation``)
so that importing one analysis does not pull in the dependencies of the others.
"""

__all__ = ["validation"]
