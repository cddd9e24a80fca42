"""course_lib: the tested helper library behind the course notebooks.

Layers (imports only go downward):

* ``_validate``, ``core``: validation, divergence detection, setup, metrics.
* ``plots``, ``widgets``: shared figure styling and the :class:`~course_lib.widgets.Demo` base.
* topic modules: ``sensing``, ``flows``, ``dln``, ``rwkv`` (maths and simulation) and their
  figure/widget builders in ``course_lib.demos``.
* ``report``: papermill batch reports over notebooks and parameter grids.
"""

from ._validate import DivergenceError
from .core import loglog_slope, read_metrics, record_metric, setup

__all__ = ["DivergenceError", "loglog_slope", "read_metrics", "record_metric", "setup"]
__version__ = "0.1.0"
