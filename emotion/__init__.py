"""Emotion recognition for RAVDESS-style corpora: the domain package.

Pure, typed building blocks with no orchestration imports: ids and labels
(:mod:`emotion.core.ids`), input discovery (:mod:`emotion.store.sources`), audio decoding
(:mod:`emotion.audio.decode`) and features (:mod:`emotion.audio.seed`), the Parquet
store (:mod:`emotion.store.store`), extraction steps (:mod:`emotion.extract`),
splits, models, metrics, persistence and the synthetic corpus.
"""

__version__ = "0.1.0"
