"""The models: the study's CNN, musicnn, the transfer backbones (:mod:`.backbones`), fusion,
preprocessing, evaluation, best-model selection and ONNX inference."""
