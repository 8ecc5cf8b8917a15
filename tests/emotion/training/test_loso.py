"""emotion.training.loso: what LOSO with fixed hyper-parameters says it assumes."""

from __future__ import annotations

from emotion.core.splits import ActorSplit
from emotion.training.loso import fixed_note


def test_the_fixed_params_note_counts_the_held_out_actors_that_chose_them():
    actors = list(range(1, 21))
    other = fixed_note(ActorSplit.parse("train=1-16,test=17-20"), actors)  # --params-from another split
    assert other.startswith("hyper-parameters fixed from the stored run on train=01-16,test=17-20")
    assert "16 of the 20 held-out actors took part in that choice (mildly optimistic)" in other
    same = fixed_note(ActorSplit.parse("train=1-20,test=21-24"), actors)
    assert "20 of the 20 held-out actors took part" in same
    clean = fixed_note(ActorSplit.parse("train=1-16,test=17-20"), [17, 18, 19, 20])
    assert "0 of the 4 held-out actors" in clean and "optimistic" not in clean


def _faced(n_actors: int = 4, per_actor: int = 8, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for a in range(1, n_actors + 1):
        for i in range(per_actor):
            emo = i % 2 + 1
            rows.append({"path": f"a{a:02d}/c{i}.mp4", "content_hash": f"h{a}{i}", "actor": a, "emotion": emo,
                         "f0": emo * 3.0 + rng.normal(0, 0.1), "f1": rng.normal()})
    return pd.DataFrame(rows)


def test_a_held_out_actors_clips_without_a_face_count_as_wrong_in_its_fold():
    import pandas as pd

    from emotion.models.catalog import model_spec
    from emotion.models.search import SearchParams
    from emotion.training.loso import loso, loso_data

    df = _faced()
    split = ActorSplit.parse("train=1-4,test=5-6")
    search = SearchParams(n_iter=1, cv_folds=2, refine=False)
    plain = loso(model_spec("lr"), loso_data(df, ["f0", "f1"], split, "fh"), search)
    assert plain["per_actor"] == {"01": 1.0, "02": 1.0, "03": 1.0, "04": 1.0}  # separable: every clip right
    # actor 02 has 2 more clips without a face, actor 05 (a test actor) 1: not read; actor 06 only faceless clips
    none = pd.DataFrame({"path": ["a02/x.mp4", "a02/y.mp4", "a05/z.mp4"], "content_hash": ["x", "y", "z"],
                         "actor": [2, 2, 5], "emotion": [1, 2, 1]})
    data = loso_data(df, ["f0", "f1"], split, "fh", faceless=none)
    assert data.data_hash != loso_data(df, ["f0", "f1"], split, "fh").data_hash  # other clips: other data
    r = loso(model_spec("lr"), data, search)
    assert r["per_actor"]["02"] == 8 / 10 and r["per_actor"]["01"] == 1.0
    assert r["n_clips"] == 34 and r["n_no_face"] == 2 and r["n_actors"] == 4
    only = pd.DataFrame({"path": ["a04/x.mp4"], "content_hash": ["x"], "actor": [4], "emotion": [1]})
    r = loso(model_spec("lr"), loso_data(df[df["actor"] != 4], ["f0", "f1"], split, "fh", faceless=only), search)
    assert r["per_actor"]["04"] == 0.0 and r["n_actors"] == 4  # an actor none of whose clips shows a face: 0, not left out
