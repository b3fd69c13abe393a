"""The genre predictor as an MLflow pyfunc model (what the serving pipeline logs and
``genre-serve`` serves); its own module because importing MLflow takes seconds, which the
prediction command does not need."""

from __future__ import annotations

import warnings
from typing import Any

import mlflow.pyfunc
import pandas as pd

from music_genre.predict import Predictor, predict_file, predictions_frame

# MLflow asks for type hints it could validate requests with; this model checks its input
# itself (a 'path' column) and answers a wrong request with a 400 and a short message.
warnings.filterwarnings(
    "ignore", message=".*Add type hints to the `predict` method", category=UserWarning
)


class GenrePredictorModel(mlflow.pyfunc.PythonModel):
    """The prediction command as an MLflow pyfunc model: input a table with a ``path`` column
    of audio files, output one row per file (top genre, a probability column per genre, and an
    ``error`` column that is empty when the file was classified)."""

    def __init__(
        self, predictor: Predictor, min_seconds: float = 3.0, max_windows: int = 10
    ) -> None:
        self.predictor = predictor
        self.min_seconds = min_seconds
        self.max_windows = max_windows

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        columns = list(getattr(model_input, "columns", []))
        if "path" not in columns:
            # MlflowException with BAD_REQUEST: the scoring server answers 400 with this
            # message (any other exception becomes a 400 carrying a Python stack trace)
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import BAD_REQUEST

            raise MlflowException(
                f"the input needs a 'path' column of audio file paths, got columns {columns}: "
                'send {"dataframe_split": {"columns": ["path"], "data": [["/abs/song.mp3"]]}}',
                error_code=BAD_REQUEST,
            )
        predictions = [
            predict_file(self.predictor, path, self.min_seconds, self.max_windows)
            for path in model_input["path"]
        ]
        return predictions_frame(predictions, self.predictor.class_names)
