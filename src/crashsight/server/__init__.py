"""The embedded error endpoint for training servers (``pip install 'crashsight[server]'``).

`crashsight_app` builds a Starlette application that a FastAPI or Starlette server mounts, or that
``crashsight serve`` runs on its own; `training_app` serves the same jobs in a training server's
existing error contract (`crashsight.server.training`). See `crashsight.server.app` for the routes and statuses,
`crashsight.server.jobs` for the folder layout and `crashsight.server.models` for the JSON.
"""

from __future__ import annotations

from .app import crashsight_app as crashsight_app
from .app import training_app as training_app
from .bounds import Limits as Limits
from .models import ErrorBody as ErrorBody
from .models import ErrorEntry as ErrorEntry
from .models import JobAnalysis as JobAnalysis
from .models import JobErrors as JobErrors
from .models import JobList as JobList
from .models import JobSummary as JobSummary
from .training import TrainingErrors as TrainingErrors

__all__ = (
    "ErrorBody",
    "ErrorEntry",
    "JobAnalysis",
    "JobErrors",
    "JobList",
    "JobSummary",
    "Limits",
    "TrainingErrors",
    "crashsight_app",
    "training_app",
)
