"""carbonsink — terrestrial vegetation carbon sink from gridded remote-sensing and climate data.

Data flow: io -> cube -> flux -> stats -> analysis -> regions -> report;
``carbonsink.pipeline`` runs a YAML study through these steps.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("carbonsink")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

from . import errors, units  # noqa: E402

__all__ = ["__version__", "errors", "units"]
