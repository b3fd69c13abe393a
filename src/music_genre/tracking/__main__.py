"""``python -m music_genre.tracking [env]`` prints the project's MLflow store (`make mlflow-ui`,
`make serve`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# stdout holds only the URI (the project's logging config logs INFO to stdout)
os.environ.setdefault(
    "KEDRO_LOGGING_CONFIG", str(Path(__file__).parents[1] / "commands" / "cli_logging.yml")
)

from music_genre.tracking.uri import tracking_uri  # noqa: E402

print(tracking_uri(".", sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None))  # noqa: T201
