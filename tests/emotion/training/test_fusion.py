"""Fused runs: what the metrics record."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emotion.audio.seed import AudioFeatureParams
from emotion.core.splits import ActorSplit
from emotion.models.fusion import AudioVisualFusion
from emotion.training.fusion import train_and_evaluate_fusion
from emotion.video.frames import FrameParams
from tests.emotion.models.test_fusion import split_signal


def test_metrics_name_the_actors_trained_and_tested_not_the_split():
    X, y, g = split_signal(4, per_class=3)
    acols, vcols = [f"a{i}" for i in range(6)], [f"v{i}" for i in range(5)]
    actor = np.array([1, 2, 3, 17])[g]  # the data holds actors 1-3 and 17 of train=1-16,test=17-20
    table = pd.concat([pd.DataFrame({"path": [f"{k}.mp4" for k in range(len(y))], "content_hash": "h",
                                     "actor": actor, "emotion": y + 1}),
                       pd.DataFrame(X, columns=[*acols, *vcols])], axis=1)
    out = train_and_evaluate_fusion(AudioVisualFusion(cv_folds=3), table, acols, vcols,
                                    ActorSplit.parse("train=1-16,test=17-20"), AudioFeatureParams(), FrameParams())
    assert out.metrics["train_actors"] == [1, 2, 3] and out.metrics["test_actors"] == [17]
