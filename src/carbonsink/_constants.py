"""Physical and product constants of carbonsink (rank 0: imports nothing of carbonsink).

The one definition of each constant; the subpackages (``cube.area``, ``io.modis``,
``testing.modis``) import them from here.
"""

from __future__ import annotations

__all__ = ["MODIS_SPHERE_RADIUS", "R_AUTHALIC"]

#: radius of the MODIS sinusoidal sphere [m] (MODIS Land grid, ``ProjParams``); also the
#: authalic sphere on which carbonsink computes the area of lat/lon cells
MODIS_SPHERE_RADIUS = 6371007.181

#: the authalic sphere radius of pixel areas [m] (= the MODIS sphere)
R_AUTHALIC = MODIS_SPHERE_RADIUS
