"""A synthetic RAVDESS-named corpus with a learnable signal per emotion.

Each clip is a voiced, speech-like sound: a harmonic series whose pitch,
spectral tilt, formant, syllable rate, vibrato and breathiness depend on the
emotion; actors differ in base pitch (by gender), timbre, level, sample rate
and channel count; every clip gets its own noise. The emotion signal is
deliberately a mix of cues that MFCC statistics can learn across speakers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from emotion.core.ids import Emotion, Modality, RavdessId, VocalChannel
from emotion.core.progress import ProgressFn, report

# per emotion (neutral ... surprised)
_F0 = np.array([1.00, 0.93, 1.22, 0.86, 1.30, 1.42, 0.97, 1.55])
_TILT = np.array([1.3, 1.7, 0.9, 1.9, 0.6, 1.1, 1.5, 0.8])
_RATE = np.array([4.0, 3.0, 5.0, 2.5, 6.0, 7.0, 3.5, 5.5])
_VIB = np.array([0.01, 0.005, 0.03, 0.01, 0.02, 0.05, 0.015, 0.04])
_NOISE = np.array([0.02, 0.05, 0.02, 0.08, 0.03, 0.06, 0.10, 0.02])
_FORMANT = np.array([800.0, 600.0, 1200.0, 500.0, 1500.0, 1000.0, 700.0, 1800.0])
_SAMPLE_RATES = (16000, 22050, 44100, 48000)


# Eight training actors and the four test actors of the standard split.
DEFAULT_ACTORS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 21, 22, 23, 24)


# signal="split": the voice tells only which of four pairs an emotion is in, and the face (emotion.video.synth)
# only which of four other pairs, so each modality alone is at most half right and only both together tell
# the emotion: a corpus on which fusion has something to show.
VOICE_PAIRS = np.array([0, 1, 1, 0, 4, 5, 5, 4])  # {neutral, sad} {calm, happy} {angry, surprised} {fearful, disgust}
FACE_PAIRS = np.array([0, 0, 2, 3, 4, 4, 3, 2])  # {neutral, calm} {happy, surprised} {sad, disgust} {angry, fearful}
SIGNALS = ("full", "split")


@dataclass(frozen=True)
class SynthParams:
    actors: tuple[int, ...] = DEFAULT_ACTORS
    repetitions: int = 2
    duration: float = 1.5
    seed: int = 0
    signal: str = "full"  # or "split" (see VOICE_PAIRS)


def all_ids(params: SynthParams, modality: Modality = Modality.AUDIO_ONLY) -> list[RavdessId]:
    out = []
    for actor in params.actors:
        for emo in Emotion:
            for intensity in (1,) if emo is Emotion.NEUTRAL else (1, 2):
                for statement in (1, 2):
                    for rep in range(1, params.repetitions + 1):
                        out.append(RavdessId(modality, VocalChannel.SPEECH, emo, intensity, statement, rep, actor))
    return out


@dataclass(frozen=True)
class Voice:
    f0: float
    formant_shift: float
    gain: float
    sample_rate: int
    channels: int


def actor_voice(actor: int, seed: int = 0) -> Voice:
    rng = np.random.default_rng([seed, actor, 7])
    base = rng.uniform(95, 140) if actor % 2 else rng.uniform(175, 240)
    return Voice(float(base), float(rng.uniform(0.9, 1.12)), float(rng.uniform(0.35, 0.8)),
                 _SAMPLE_RATES[actor % len(_SAMPLE_RATES)], 2 if actor % 5 == 0 else 1)


def synth_clip(rid: RavdessId, params: SynthParams) -> tuple[np.ndarray, int]:
    """Samples ``[frames, channels]`` float32 and the sample rate of one clip."""
    voice = actor_voice(rid.actor, params.seed)
    e = int(rid.emotion) - 1
    if params.signal == "split":
        e = int(VOICE_PAIRS[e])
    strong = rid.intensity == 2
    rng = np.random.default_rng([params.seed, *rid.fields()])
    sr = voice.sample_rate
    n = int(params.duration * sr * rng.uniform(0.9, 1.1))
    t = np.arange(n) / sr
    f0 = voice.f0 * _F0[e] * (1.08 if strong else 1.0) * rng.uniform(0.97, 1.03)
    vib = _VIB[e] * (1.5 if strong else 1.0)
    contour = f0 * (1 + vib * np.sin(2 * np.pi * rng.uniform(4, 6) * t) + 0.004 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = 2 * np.pi * np.cumsum(contour) / sr
    formant = _FORMANT[e] * voice.formant_shift
    y = np.zeros(n)
    for h in range(1, 25):
        fh = h * f0
        if fh > sr / 2 - 500:
            break
        amp = h ** -_TILT[e] * (1 + 3 * np.exp(-0.5 * ((fh - formant) / 250) ** 2))
        y += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    rate = _RATE[e] * rng.uniform(0.92, 1.08)
    env = 0.5 * (1 - np.cos(2 * np.pi * rate * t + rng.uniform(0, np.pi))) ** 1.5
    env *= np.minimum(1, np.minimum(t, t[-1] - t) / 0.05)  # fade in/out
    y = y * env + _NOISE[e] * (1.3 if strong else 1.0) * rng.standard_normal(n) * (0.3 + env)
    y = y / (np.max(np.abs(y)) + 1e-9) * voice.gain * (1.0 if strong else 0.7)
    y += 0.002 * rng.standard_normal(n)  # room noise
    out = np.repeat(y[:, None], voice.channels, axis=1).astype(np.float32)
    return out, sr


def write_corpus(root: str | Path, params: SynthParams = SynthParams(), progress: ProgressFn | None = None) -> list[Path]:
    """Write ``Actor_XX/<id>.wav|.flac`` files under ``root``, and the synthetic-corpus marker
    (:func:`emotion.core.provenance.mark_synthetic`) at its top; returns the clips' paths (``progress``: clip by clip)."""
    from dataclasses import asdict

    from emotion.core.provenance import mark_synthetic

    root = Path(root)
    mark_synthetic(root, "emotion.synth.write_corpus", asdict(params))
    paths = []
    ids = all_ids(params)
    for rid in ids:
        y, sr = synth_clip(rid, params)
        ext = "flac" if rid.actor % 2 else "wav"
        path = root / f"Actor_{rid.actor:02d}" / f"{rid.stem}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, sr, subtype="PCM_16")
        paths.append(path)
        report(progress, "synth audio", len(paths), len(ids), "clips")
    return paths
