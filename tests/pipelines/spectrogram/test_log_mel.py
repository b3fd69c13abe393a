"""The log-mel front end piece by piece (issue #25: the tests that kill its mutants): the Slaney
mel scale and filter bank against librosa's (the filter bank's cache cleared, so each test
computes it), the STFT's input dtype and padding, the study image's exact pixel values."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from music_genre.audio import augment
from music_genre.audio import spectrograms as sp


def test_slaney_mel_scale_equals_librosa():
    hz = np.array([0.0, 50.0, 666.0, 999.9, 1000.0, 1000.1, 4000.0, 11025.0])
    np.testing.assert_allclose(sp._hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12, atol=1e-12)
    assert sp._hz_to_mel(np.array([500])).dtype == np.float64
    assert float(sp._hz_to_mel(2000.0)) == pytest.approx(float(librosa.hz_to_mel(2000.0)))
    mel = np.array([0.0, 7.5, 14.99, 15.0, 15.01, 30.0, 45.0])
    np.testing.assert_allclose(sp._mel_to_hz(mel), librosa.mel_to_hz(mel), rtol=1e-12, atol=1e-12)


@pytest.mark.numeric
@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmax", [(22050, 512, 32, 8000.0), (16000, 256, 20, 6000.0)]
)
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels, fmax):
    sp.mel_filterbank.cache_clear()
    filters = sp.mel_filterbank(sr, n_fft, n_mels, fmax)
    assert filters.dtype == np.float32 and not filters.flags.writeable
    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax)
    np.testing.assert_allclose(filters, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.numeric
def test_mel_power_spectrogram_input_and_padding():
    sp.mel_filterbank.cache_clear()
    signal = np.random.default_rng(0).standard_normal(4000)  # float64
    args = (22050, 512, 128, 32, 8000.0)
    power = sp.mel_power_spectrogram(signal, *args)
    assert power.dtype == np.float32 and power.shape == (32, 1 + 4000 // 128)
    # computed from the float32 signal, as librosa reads audio
    np.testing.assert_array_equal(power, sp.mel_power_spectrogram(signal.astype(np.float32), *args))
    reflect = sp.mel_power_spectrogram(signal, *args, pad_mode="reflect")
    expected = librosa.feature.melspectrogram(
        y=signal.astype(np.float32),
        sr=22050,
        n_fft=512,
        hop_length=128,
        n_mels=32,
        fmax=8000.0,
        pad_mode="reflect",
    )
    np.testing.assert_allclose(reflect, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(reflect[:, 0], power[:, 0])
    nyquist = sp.mel_power_spectrogram(signal, 16000, 512, 128, 32)  # fmax None: sr / 2
    np.testing.assert_array_equal(
        nyquist, sp.mel_power_spectrogram(signal, 16000, 512, 128, 32, 8000.0)
    )
    assert not np.array_equal(
        nyquist, sp.mel_power_spectrogram(signal, 16000, 512, 128, 32, 5000.0)
    )
    with pytest.raises(ValueError, match=r"1-D mono signal, got shape \(2, 10\)"):
        sp.mel_power_spectrogram(np.zeros((2, 10)), *args)


def test_study_image_pixels():
    spec = np.array([[0.0, 1.0], [2.0, 4.0]])
    image = sp.to_study_image(spec)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, [[128.0, 0.0], [255.0, 191.0]])
    np.testing.assert_array_equal(
        sp.to_study_image(spec, quantize=False), [[127.5, 0.0], [255.0, 191.25]]
    )
    flat = sp.to_study_image(np.full((2, 3), 5.0))
    assert flat.shape == (2, 3) and flat.tolist() == [[255.0] * 3] * 2
    # scaled in float32, as the stored spectrograms are
    odd = np.array([[0.1, 0.7], [0.3, 1.3]])
    s32 = odd.astype(np.float32)
    low, high = float(s32.min()), float(s32.max())
    expected = (255.0 - np.flipud((s32 - low) / (high - low) * 255.0)).astype(np.float32)
    np.testing.assert_array_equal(sp.to_study_image(odd, quantize=False), expected)


def test_split_augmented_key():
    assert augment.split_augmented_key("000002__time_mask") == ("000002", "time_mask")
    assert augment.split_augmented_key("a__b__freq_mask") == ("a__b", "freq_mask")
    kinds = "|".join(augment.MASK_KINDS)
    for key in ("time_mask", "000002__blur", "000002"):
        with pytest.raises(ValueError) as error:
            augment.split_augmented_key(key)
        assert str(error.value) == f"{key!r} is not an augmented key (<track_id>__<{kinds}>)"
