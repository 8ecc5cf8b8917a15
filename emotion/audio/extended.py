"""The ``extended`` audio feature set: many frame-level descriptors, rich functionals.

Frame-level descriptors (all from one STFT, plus a YIN pitch track on the same
frame grid):

* ``logmelNN``: log energies (dB) of ``n_mels`` mel bands
* ``mfccNN`` and ``mfccNN_delta``: cepstra of those bands and their deltas
* ``centroid``, ``bandwidth``, ``rolloff`` (85 %), ``flatness``: spectral shape
* ``contrastN``: spectral contrast in ``n_contrast_bands + 1`` octave bands
* ``zcr``: zero-crossing rate
* ``chromaNN``: the 12 pitch classes
* ``alpha_ratio`` (dB, 50-1000 Hz over 1-5 kHz), ``hammarberg`` (dB, the
  strongest peak in 0-2 kHz over that in 2-5 kHz), ``slope0500`` and
  ``slope5001500`` (dB/Hz, the log-power spectrum's least-squares slope in
  0-500 and 500-1500 Hz): voice quality and vocal effort, after eGeMAPS
* ``hnr``: harmonics-to-noise ratio (dB) from the YIN aperiodicity
* ``energy`` and ``energy_delta``: frame RMS in dB and its delta
* ``f0`` and ``f0_delta``: fundamental frequency in semitones above 55 Hz
  (YIN), on voiced frames only

Each is summarised over the *active* part of the clip (from the first to the
last frame within ``top_db`` of the loudest; RAVDESS clips carry about a
second of silence) by the functionals ``mean``, ``std``, ``p10``, ``p50``,
``p90``, ``range`` (max - min) and ``slope`` (least-squares slope per second).
``voiced_ratio`` (share of active frames that are voiced) follows.

Then, for every descriptor but the pitch rows: the mean and std over the
voiced frames only (``_vmean``, ``_vstd``) and over the unvoiced ones
(``_umean``, ``_ustd``), where vowels and consonants differ most, and the
mean absolute and the std of its frame-to-frame change per second
(``_dabs``, ``_dstd``: how fast it moves). Last, prosodic timing: ``f0_p25``,
``f0_p75``, ``f0_skew``, ``f0_peak`` (max above median), ``voiced_rate``
(voiced segments per second), ``voiced_seg_mean`` and ``voiced_seg_std``
(their lengths, s) and ``active_seconds``. Names read
``<descriptor>_<functional>``: ``logmel07_p90``, ``f0_slope``, ``mfcc03_vmean``.

Augmentation (``speeds``, off by default): with ``speeds=(0.9, 1.1)`` every
clip is also resampled to play 0.9x and 1.1x as fast (pitch, formants and
tempo move together, as with a different speaker), and the vector of each
copy is stored in the same row under ``sp090__<name>``, ``sp110__<name>``.
Training adds the copies as extra training clips; prediction averages the
model's probabilities over the clip and its copies.

Everything is vectorised over frames; a 3.5 s clip takes a few milliseconds
per descriptor family, so the whole set costs about as much as decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import librosa
import numpy as np

from emotion.core.errors import RejectedInput, UsageError
from emotion.core.params import HashedParams

FUNCTIONALS = ("mean", "std", "p10", "p50", "p90", "range", "slope")
SEGMENT_STATS = ("vmean", "vstd", "umean", "ustd", "dabs", "dstd")
PROSODY = ("f0_p25", "f0_p75", "f0_skew", "f0_peak", "voiced_rate", "voiced_seg_mean", "voiced_seg_std",
           "active_seconds")
SPECTRAL = ("centroid", "bandwidth", "rolloff", "flatness", "zcr")
VOICE_QUALITY = ("alpha_ratio", "hammarberg", "slope0500", "slope5001500", "hnr")


@dataclass(frozen=True)
class ExtendedFeatureParams(HashedParams):
    """Everything that changes the values of the ``extended`` features."""

    name: str = "extended"
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 40
    n_mfcc: int = 20
    n_contrast_bands: int = 5  # octaves from 200 Hz: 200 * 2**5 = 6.4 kHz < Nyquist
    f0_min: float = 60.0
    f0_max: float = 500.0
    f0_frame: int = 1024
    top_db: float = 40.0  # active part: frames within top_db of the loudest
    voicing_threshold: float = 0.3  # YIN aperiodicity below which a frame is voiced
    delta_width: int = 9
    # augmentation: also store the features of each clip played at these speeds (resampled; empty: none)
    speeds: tuple[float, ...] = ()
    # 2: voice-quality descriptors (alpha ratio, Hammarberg, spectral slopes, HNR)
    # 3: voiced/unvoiced statistics, rates of change, prosodic timing
    revision: int = 3

    def __post_init__(self) -> None:
        if self.sample_rate < 8000 or self.n_fft < 64 or self.hop_length < 1 or self.n_mels < 8:
            raise UsageError("extended feature parameters out of range (sample_rate, n_fft, hop_length, n_mels)")
        if not 0 < self.f0_min < self.f0_max < self.sample_rate / 2:
            raise UsageError(f"f0 range {self.f0_min}-{self.f0_max} Hz is not within 0 and the Nyquist frequency")
        if self.f0_frame < 2 * self.sample_rate / self.f0_min:
            raise UsageError(f"f0_frame {self.f0_frame} is shorter than two periods of f0_min {self.f0_min} Hz")
        if 200 * 2**self.n_contrast_bands >= self.sample_rate / 2:
            raise UsageError(f"{self.n_contrast_bands} contrast octaves from 200 Hz exceed the Nyquist frequency")
        if not 0 < self.n_mfcc <= self.n_mels:
            raise UsageError("n_mfcc must be between 1 and n_mels")
        bad = [s for s in self.speeds if not 0.5 <= s <= 2.0 or s == 1.0]
        if bad or len(set(self.speeds)) != len(self.speeds):
            raise UsageError(f"augmentation speeds must be distinct factors between 0.5 and 2.0 other than 1.0, "
                             f"got {list(self.speeds)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExtendedFeatureParams:
        d = dict(d)
        d["speeds"] = tuple(float(s) for s in d.get("speeds", ()))  # JSON gives a list
        return cls(**d)

    @property
    def min_frames(self) -> int:
        return self.delta_width

    def descriptors(self) -> list[str]:
        """The frame-level descriptors, in vector order."""
        d = [f"logmel{i:02d}" for i in range(1, self.n_mels + 1)]
        d += [f"mfcc{i:02d}" for i in range(1, self.n_mfcc + 1)]
        d += [f"mfcc{i:02d}_delta" for i in range(1, self.n_mfcc + 1)]
        d += list(SPECTRAL)
        d += [f"contrast{i}" for i in range(1, self.n_contrast_bands + 2)]
        d += [f"chroma{i:02d}" for i in range(1, 13)]
        d += list(VOICE_QUALITY)
        d += ["energy", "energy_delta", "f0", "f0_delta"]
        return d

    def feature_names(self) -> list[str]:
        """The columns of one clip's vector (without augmented copies): what models read."""
        frame_level = self.descriptors()[:-2]  # all but f0 and f0_delta, which exist on voiced frames only
        return ([f"{d}_{f}" for d in self.descriptors() for f in FUNCTIONALS] + ["voiced_ratio"]
                + [f"{d}_{s}" for s in SEGMENT_STATS for d in frame_level] + list(PROSODY))

    def variant_names(self) -> list[list[str]]:
        """The columns of each augmented copy, in ``speeds`` order."""
        return [[f"{speed_prefix(s)}{n}" for n in self.feature_names()] for s in self.speeds]

    def augment_speeds(self) -> tuple[float, ...]:
        return self.speeds

    def without_copies(self) -> ExtendedFeatureParams:
        return replace(self, speeds=())


def speed_prefix(speed: float) -> str:
    """The column prefix of a copy played at ``speed``: ``sp090__`` for 0.9."""
    return f"sp{round(speed * 100):03d}__"


def functionals(x: np.ndarray, seconds_per_frame: float) -> np.ndarray:
    """``FUNCTIONALS`` of each row of ``x`` (descriptors x frames) -> (descriptors x 7).

    A row with no frames gives zeros (e.g. the pitch of a clip without voiced frames).
    """
    return functionals_at(x, np.arange(x.shape[1]) * seconds_per_frame)


def functionals_at(x: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``FUNCTIONALS`` of each row of ``x`` (descriptors x frames) whose frames are at ``times`` (seconds, any
    spacing: the slope is per second) -> (descriptors x 7). No frames give zeros; one time only, a zero slope."""
    n = x.shape[1]
    if n == 0:
        return np.zeros((x.shape[0], len(FUNCTIONALS)))
    p10, p50, p90 = np.percentile(x, (10, 50, 90), axis=1)
    t = np.asarray(times, dtype=np.float64)
    if n > 1 and np.ptp(t) > 0:
        tc = t - t.mean()
        slope = (x - x.mean(axis=1, keepdims=True)) @ tc / (tc @ tc)
    else:
        slope = np.zeros(x.shape[0])
    return np.stack([x.mean(axis=1), x.std(axis=1), p10, p50, p90, x.max(axis=1) - x.min(axis=1), slope], axis=1)


@lru_cache(maxsize=8)
def _filters(sr: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    chroma = librosa.filters.chroma(sr=sr, n_fft=n_fft)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    return mel, chroma, freqs


def yin(
    y: np.ndarray, sr: int, fmin: float, fmax: float, frame: int, hop: int, frames_range: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """YIN pitch (Hz) and aperiodicity (0 periodic ... 1 noise) per centred frame.

    The cumulative-mean-normalised difference function of de Cheveigné and
    Kawahara (2002), computed for all frames at once with FFTs, with
    parabolic interpolation of the chosen lag. Aperiodicity is the value of
    the normalised difference at that lag, usable as a voicing score.
    ``frames_range`` = (first, stop) computes only those frames of the grid.
    """
    yp = np.pad(y, frame // 2)
    frames = librosa.util.frame(yp, frame_length=frame, hop_length=hop, axis=0)  # (n, frame)
    n_frames = 1 + len(y) // hop
    first, stop = frames_range or (0, n_frames)
    w = frame // 2  # integration window
    max_lag = min(int(np.ceil(sr / fmin)), w - 1)
    min_lag = max(1, int(np.floor(sr / fmax)))
    # only x_0 .. x_{w + max_lag} of each frame enter the difference function
    frames = frames[first:min(stop, n_frames), : w + max_lag + 1]
    # autocorrelation r(t, tau) = sum_{j<w} x_j x_{j+tau} via FFT; no wrap-around for tau <= max_lag
    import scipy.fft  # here, not at the top: the command line imports this module for every command (0.2 s)

    nfft = scipy.fft.next_fast_len(w + max_lag + 1)
    a = scipy.fft.rfft(frames, nfft, axis=1)
    b = scipy.fft.rfft(frames[:, :w], nfft, axis=1)
    acf = scipy.fft.irfft(a * np.conj(b), nfft, axis=1)[:, : max_lag + 1]
    sq = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    energy0 = sq[:, w] - sq[:, 0]
    lags = np.arange(max_lag + 1)
    energy_tau = sq[:, lags + w] - sq[:, lags]
    diff = energy0[:, None] + energy_tau - 2 * acf
    diff[:, 0] = 0
    cum = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cum, 1e-12)
    search = cmnd[:, min_lag : max_lag + 1]
    below = search < 0.1
    # the first lag under the threshold (then its local minimum), else the global minimum
    first = np.where(below.any(axis=1), below.argmax(axis=1), search.argmin(axis=1))
    idx = first.copy()
    for _ in range(8):  # walk down to the local minimum (a few steps suffice)
        nxt = np.minimum(idx + 1, search.shape[1] - 1)
        step = search[np.arange(len(idx)), nxt] < search[np.arange(len(idx)), idx]
        idx = np.where(step, nxt, idx)
    rows = np.arange(len(idx))
    lag = idx + min_lag
    lo = cmnd[rows, np.maximum(lag - 1, 1)]
    mid = cmnd[rows, lag]
    hi = cmnd[rows, np.minimum(lag + 1, max_lag)]
    denom = lo - 2 * mid + hi
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (lo - hi) / np.where(denom == 0, 1, denom), 0.0)
    shift = np.clip(shift, -1, 1)
    f0 = sr / (lag + shift)
    return f0, np.clip(mid, 0.0, 1.0)


class ExtendedFeatureExtractor:
    """Turns mono samples at ``params.sample_rate`` into the ``extended`` vector."""

    def __init__(self, params: ExtendedFeatureParams) -> None:
        self.params = params
        self.names = params.column_names()
        self._mel, self._chroma, self._freqs = _filters(params.sample_rate, params.n_fft, params.n_mels)
        self._window_power = float(np.sum(librosa.filters.get_window("hann", params.n_fft) ** 2))
        f = self._freqs
        self._bands = {k: (f >= lo) & (f < hi) for k, (lo, hi) in
                       {"alpha_lo": (50, 1000), "alpha_hi": (1000, 5000), "hamm_lo": (0, 2000), "hamm_hi": (2000, 5000),
                        "s1": (1, 500), "s2": (500, 1500)}.items()}

    def _slope(self, logp: np.ndarray, band: np.ndarray) -> np.ndarray:
        f = self._freqs[band]
        fc = f - f.mean()
        return np.asarray(fc @ (logp[band] - logp[band].mean(axis=0)) / (fc @ fc))

    def voice_quality(self, power: np.ndarray, aperiodicity: np.ndarray) -> np.ndarray:
        """``VOICE_QUALITY`` descriptors per frame (rows) of ``power`` (bins x frames)."""
        b = self._bands
        db = 10 * np.log10(power + 1e-10)
        alpha = 10 * np.log10(power[b["alpha_lo"]].sum(axis=0) + 1e-10) - 10 * np.log10(power[b["alpha_hi"]].sum(axis=0) + 1e-10)
        hamm = db[b["hamm_lo"]].max(axis=0) - db[b["hamm_hi"]].max(axis=0)
        hnr = 10 * np.log10((1 - aperiodicity + 1e-3) / (aperiodicity + 1e-3))
        return np.vstack([alpha, hamm, self._slope(db, b["s1"]), self._slope(db, b["s2"]), hnr])

    def descriptors(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame-level descriptors over the active frames: (descriptors x frames), f0 track, voiced mask.

        The f0 rows hold semitones above 55 Hz on voiced frames (NaN elsewhere).
        """
        p = self.params
        sr, hop = p.sample_rate, p.hop_length
        n_frames = 1 + len(y) // hop
        if n_frames < p.min_frames:
            raise RejectedInput(f"clip too short: {len(y) / sr:.3f} s gives {n_frames} frames, at least {p.min_frames} needed")
        mag_all = np.abs(librosa.stft(y, n_fft=p.n_fft, hop_length=hop, center=True))[:, :n_frames]
        power_all = mag_all**2
        rms = np.sqrt(2 * power_all.sum(axis=0) / (p.n_fft * self._window_power))  # Parseval, undoing the Hann window
        energy = 20 * np.log10(rms + 1e-10)
        active = np.flatnonzero(energy >= energy.max() - p.top_db)
        a0, a1 = int(active[0]), int(active[-1]) + 1
        if a1 - a0 < p.min_frames:  # a short burst: widen to the minimum around it
            a0 = max(0, min(a0, n_frames - p.min_frames))
            a1 = min(n_frames, a0 + p.min_frames)
        sl = slice(a0, a1)
        # deltas need the frames around the active part; everything else is computed on it only
        logmel_all = librosa.power_to_db(self._mel @ power_all, ref=1.0, amin=1e-10, top_db=None)
        import scipy.fft  # see yin

        mfcc = scipy.fft.dct(logmel_all, axis=0, type=2, norm="ortho")[: p.n_mfcc]
        logmel = logmel_all[:, sl]
        mag, power = mag_all[:, sl], power_all[:, sl]
        total = power.sum(axis=0) + 1e-12
        centroid = (self._freqs @ power) / total
        bandwidth = np.sqrt(((self._freqs[:, None] - centroid) ** 2 * power).sum(axis=0) / total)
        cum = np.cumsum(power, axis=0)
        rolloff = self._freqs[np.minimum((cum < 0.85 * cum[-1]).sum(axis=0), len(self._freqs) - 1)]
        flatness = np.exp(np.mean(np.log(power + 1e-10), axis=0)) / (np.mean(power, axis=0) + 1e-10)
        frames = librosa.util.frame(np.pad(y, p.n_fft // 2), frame_length=p.n_fft, hop_length=hop, axis=0)[sl]
        zcr = np.mean(np.abs(np.diff(np.signbit(frames), axis=1)), axis=1)
        contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=p.n_fft, n_bands=p.n_contrast_bands)
        chroma = self._chroma @ power
        chroma = chroma / (chroma.max(axis=0, keepdims=True) + 1e-10)
        f0_hz, aperiodicity = yin(y, sr, p.f0_min, p.f0_max, p.f0_frame, hop, (a0, a1))
        voiced = (aperiodicity < p.voicing_threshold) & (energy[sl] >= energy.max() - p.top_db)
        f0 = np.where(voiced, 12 * np.log2(f0_hz / 55.0), np.nan)
        delta = {"mode": "nearest", "width": p.delta_width}
        block = np.vstack([
            logmel, mfcc[:, sl], librosa.feature.delta(mfcc, **delta)[:, sl],  # type: ignore[arg-type]
            centroid[None, :], bandwidth[None, :], rolloff[None, :], flatness[None, :], zcr[None, :],
            contrast, chroma, self.voice_quality(power, aperiodicity), energy[None, sl],
            librosa.feature.delta(energy[None, :], **delta)[:, sl],  # type: ignore[arg-type]
        ])
        return block, f0, voiced

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """The clip's vector, then (with ``speeds``) that of each copy played at those speeds."""
        out = [self.vector(y)]
        sr = self.params.sample_rate
        for s in self.params.speeds:
            # played s times as fast: resample to sr / s and read it back at sr
            out.append(self.vector(librosa.resample(y, orig_sr=sr, target_sr=int(round(sr / s)), res_type="soxr_hq")))
        return np.concatenate(out)

    def vector(self, y: np.ndarray) -> np.ndarray:
        """The ``feature_names`` of one clip."""
        block, f0, voiced = self.descriptors(y)
        spf = self.params.hop_length / self.params.sample_rate
        f0v = f0[voiced]
        # f0 delta over consecutive voiced frames only (no jumps across unvoiced gaps)
        runs = np.flatnonzero(voiced[1:] & voiced[:-1])
        f0d = (f0[runs + 1] - f0[runs]) / spf
        parts = [functionals(block, spf), functionals(f0v[None, :], spf), functionals(f0d[None, :], spf)]
        out = np.concatenate([p.reshape(-1) for p in parts] + [np.array([voiced.mean() if len(voiced) else 0.0]),
                                                               segment_stats(block, voiced, spf), prosody(f0v, voiced, spf)])
        out = out.astype(np.float32)
        if not np.isfinite(out).all():
            raise RejectedInput("features are not finite (NaN or inf)")
        return out


def segment_stats(block: np.ndarray, voiced: np.ndarray, seconds_per_frame: float) -> np.ndarray:
    """``SEGMENT_STATS`` of each row of ``block`` (descriptors x frames), statistic-major.

    Voiced (unvoiced) statistics use all frames where fewer than 2 frames are voiced (unvoiced).
    """
    bv = block[:, voiced] if voiced.sum() >= 2 else block
    bu = block[:, ~voiced] if (~voiced).sum() >= 2 else block
    d = np.diff(block, axis=1) / seconds_per_frame
    return np.concatenate([bv.mean(1), bv.std(1), bu.mean(1), bu.std(1), np.abs(d).mean(1), d.std(1)])


def prosody(f0v: np.ndarray, voiced: np.ndarray, seconds_per_frame: float) -> np.ndarray:
    """``PROSODY``: the voiced pitch's quartiles, skew and peak, and the timing of voiced segments."""
    if len(f0v) > 2:
        p25, p50, p75 = np.percentile(f0v, (25, 50, 75))
        sd = f0v.std()
        skew = float(np.mean((f0v - f0v.mean()) ** 3) / sd**3) if sd > 1e-9 else 0.0
        pitch = [p25, p75, skew, f0v.max() - p50]
    else:
        pitch = [0.0, 0.0, 0.0, 0.0]
    v = voiced.astype(np.int8)
    starts = np.flatnonzero(np.diff(np.r_[0, v]) == 1)
    ends = np.flatnonzero(np.diff(np.r_[v, 0]) == -1)
    segs = (ends - starts + 1) * seconds_per_frame if len(starts) else np.zeros(1)
    seconds = len(voiced) * seconds_per_frame
    return np.array(pitch + [len(starts) / max(seconds, 1e-9), segs.mean(), segs.std(), seconds])
