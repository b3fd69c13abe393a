"""Benchmark: an int8 quantized export of the packaged transfer model's backbone (ONNX
Runtime dynamic quantization) against its float32 export, on the demo's validation and test
tracks.

    python benchmarks/int8_backbone.py [--project .] [--splits validation test]

Needs a trained project (``make run``) whose packaged predictor
(``data/06_models/genre_predictor``, the serving pipeline's) is a transfer model with an ONNX
backbone. Each track is predicted twice with the same decoding, windows and classifier: once
with the float32 backbone, once with the int8 one. Prints per-track top-1 agreement, the
largest probability difference, the backbone files' sizes and the median time per file of
each, and the last line ``agreement=.. max_prob_diff=.. float_ms=.. int8_ms=.. float_mb=..
int8_mb=..``. The issue's rule (#24): the int8 export is worth using only at agreement ≥ 0.99.
Other programs using the CPU slow both figures alike; the load average is printed.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _quantized(serialized: bytes, folder: Path) -> bytes:
    """The dynamic int8 quantization of an ONNX model, its metadata (the export's record of
    backbone, weights and cut level) kept."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = folder / "float.onnx", folder / "int8.onnx"
    source.write_bytes(serialized)
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    original, quantized = onnx.load(str(source)), onnx.load(str(target))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    return quantized.SerializeToString()


def main() -> int:
    import tempfile

    import pandas as pd

    from music_genre.models.inference import OnnxModel
    from music_genre.serving import TransferPredictor, predict_file
    from music_genre.serving.package import PACKAGE_FOLDER, load_package

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--splits", nargs="+", default=["validation", "test"])
    args = parser.parse_args()
    project = args.project.resolve()

    float_predictor = load_package(project / PACKAGE_FOLDER)
    if not isinstance(float_predictor, TransferPredictor) or float_predictor.backbone is None:
        print("the packaged predictor is not a transfer model with an ONNX backbone")  # noqa: T201
        return 2
    with tempfile.TemporaryDirectory() as folder:
        int8_bytes = _quantized(float_predictor.backbone.serialized, Path(folder))
    int8_predictor = copy.copy(float_predictor)
    int8_predictor.backbone = OnnxModel(int8_bytes, source="int8 quantized backbone")
    int8_predictor._extractor = None

    tracks = pd.read_parquet(project / "data/03_primary/tracks.parquet")
    paths = tracks.loc[tracks["split"].isin(args.splits), "path"].tolist()
    agree, diffs, times = 0, [], {"float": [], "int8": []}
    for path in paths:
        answers = {}
        for name, predictor in (("float", float_predictor), ("int8", int8_predictor)):
            start = time.perf_counter()
            answers[name] = predict_file(predictor, path)
            times[name].append(1000.0 * (time.perf_counter() - start))
        a, b = answers["float"], answers["int8"]
        if a.error or b.error:
            print(f"{path}: {a.error or b.error}")  # noqa: T201
            continue
        agree += a.top(1)[0][0] == b.top(1)[0][0]
        diffs.append(max(abs(a.probabilities[g] - b.probabilities[g]) for g in a.probabilities))
    scored = len(diffs)
    float_mb = len(float_predictor.backbone.serialized) / 1e6
    int8_mb = len(int8_bytes) / 1e6
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")  # noqa: T201
    print(  # noqa: T201
        f"{scored} tracks ({', '.join(args.splits)}): top-1 agreement {agree}/{scored}, largest "
        f"probability difference {max(diffs):.4f}, median of the rest "
        f"{statistics.median(diffs):.4f}"
    )
    print(  # noqa: T201
        f"agreement={agree / scored:.4f} max_prob_diff={max(diffs):.4f} "
        f"float_ms={statistics.median(times['float']):.1f} "
        f"int8_ms={statistics.median(times['int8']):.1f} "
        f"float_mb={float_mb:.2f} int8_mb={int8_mb:.2f}"
    )
    return 0 if scored else 1


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT / "src"))
    sys.exit(main())
