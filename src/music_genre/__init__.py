"""Music genre classification on FMA, as a Kedro project."""

import os

# TensorFlow's C++ start-up notices (CUDA absent, oneDNN, CPU flags) drown Kedro's own log on
# every run; keep warnings and errors only unless the user asks for more.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
