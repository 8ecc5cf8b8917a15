"""Emotion recognition for RAVDESS-style corpora: the domain package.

Pure, typed building blocks with no orchestration imports: ids and labels
(:mod:`emotion.ids`), input discovery (:mod:`emotion.sources`), audio decoding
(:mod:`emotion.audio`) and features (:mod:`emotion.features`), the Parquet
store (:mod:`emotion.store`), extraction steps (:mod:`emotion.extract`),
splits, models, metrics, persistence and the synthetic corpus.
"""

__version__ = "0.1.0"
