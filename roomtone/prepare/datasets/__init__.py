"""Ready-made datasets: ``synthetic_events`` (embedded default, generated in code) and ``fsdd`` (download).

The functions are imported eagerly so that ``roomtone.prepare.datasets.fsdd`` names the function, not
the submodule of the same name (importing a submodule binds its name on the package).
"""

from roomtone.prepare.datasets.fsdd import fsdd
from roomtone.prepare.datasets.synthetic import synthetic_events

__all__ = ["fsdd", "synthetic_events"]
