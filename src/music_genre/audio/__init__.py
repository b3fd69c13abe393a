"""Audio: decoding (:mod:`.decode`), log-mel spectrograms, augmentation, FMA's handcrafted
features and what audio each model trains on (:mod:`.training_audio`)."""
