"""Write the artefacts of tests/test_legacy_layout.py with the code of the flat layout.

Run with the PREVIOUS layout's source first on the path (see README.md here):
    PYTHONPATH=<checkout of main before issue #22>/src .venv/bin/python \
        tests/data/legacy_layout/make_artefacts.py tests/data/legacy_layout
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import joblib
import numpy as np

import music_genre

CLASSES = ["Electronic", "Folk", "Rock"]


def main(out: Path) -> None:
    assert Path(music_genre.__file__).parent.joinpath("predict.py").exists(), "not the old layout"
    import keras
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from music_genre.cnn_model import StudyImageScaling
    from music_genre.predict import CnnPredictor, FusionPredictor, TransferPredictor
    from music_genre.preprocessing import DropRoundingOnlyFeatures
    from music_genre.served_model import GenrePredictorModel

    rng = np.random.default_rng(22)
    features = rng.normal(size=(60, 10))
    labels = np.arange(60) % 3
    classifier = make_pipeline(
        StandardScaler(), DropRoundingOnlyFeatures(), PCA(4, random_state=0), LogisticRegression()
    ).fit(features, labels)
    joblib.dump(classifier, out / "transfer_classifier.joblib")

    keras.utils.set_random_seed(22)
    model = keras.Sequential(
        [
            keras.Input((4, 6, 1)),
            StudyImageScaling(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.save(out / "cnn_model.keras")
    images = rng.normal(-40.0, 10.0, size=(5, 4, 6, 1)).astype(np.float32)

    cnn = CnnPredictor(model=model, class_names=CLASSES, spectrogram_settings={})
    (out / "cnn_predictor.pkl").write_bytes(pickle.dumps(cnn))
    transfer = TransferPredictor(
        bundle={"model": classifier, "class_names": CLASSES}, spectrogram_settings={}
    )
    fusion = FusionPredictor(
        bundle={"method": "late_fusion", "weights": [0.25, 0.75], "class_names": CLASSES},
        members=[cnn, cnn],
    )
    (out / "fusion_predictor.pkl").write_bytes(pickle.dumps(fusion))
    (out / "transfer_predictor.pkl").write_bytes(pickle.dumps(transfer))

    import mlflow.pyfunc

    mlflow.pyfunc.save_model(
        str(out / "served_model"),
        python_model=GenrePredictorModel(cnn, min_seconds=1.0, max_windows=2),
        pip_requirements=["music-genre"],
    )

    from music_genre.fusion import fused_probabilities

    cnn_probabilities = cnn.probabilities(images)
    np.savez(
        out / "expected.npz",
        features=features[:7],
        images=images,
        classifier=classifier.predict_proba(features[:7]),
        cnn=cnn_probabilities,
        fusion=fused_probabilities(fusion.bundle, [cnn_probabilities, cnn_probabilities]),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
