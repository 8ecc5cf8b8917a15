"""Audio-visual fusion: weights by grouped CV, missing audio, saving."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from emotion.audio.synth import FACE_PAIRS, VOICE_PAIRS
from emotion.core.errors import UsageError
from emotion.models.fusion import AudioVisualFusion, fusion_cv_accuracy
from emotion.models.persist import dump_model, load_model


def split_signal(n_actors: int, per_class: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clips whose 'audio' tells only the voice pair of the emotion and whose 'face' only the face pair."""
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    fixed = np.random.default_rng(99)  # the same signal in every call; only actors and noise differ
    centres_a = fixed.normal(0, 1, (8, 6))
    centres_v = fixed.normal(0, 1, (8, 5))
    for actor in range(n_actors):
        shift_a, shift_v = rng.normal(0, 0.3, 6), rng.normal(0, 0.3, 5)
        for k in range(8):
            for _ in range(per_class):
                a = centres_a[VOICE_PAIRS[k]] + shift_a + rng.normal(0, 0.35, 6)
                v = centres_v[FACE_PAIRS[k]] + shift_v + rng.normal(0, 0.35, 5)
                X.append(np.concatenate([a, v]))
                y.append(k)
                g.append(actor)
    return np.array(X), np.array(y), np.array(g)


@pytest.mark.parametrize("method", ["late", "stack", "early"])
def test_fusion_beats_each_modality_when_each_carries_half_the_signal(method):
    X, y, g = split_signal(6)
    Xt, yt, _ = split_signal(3, seed=1)
    est = AudioVisualFusion(method=method, n_audio=6, C_audio=1.0, C_video=1.0).fit(X, y, groups=g)
    fused = (est.predict(Xt) == yt).mean()
    pa, pv, has = est.branch_proba(Xt)
    audio_alone, video_alone = (pa.argmax(1) == yt).mean(), (pv.argmax(1) == yt).mean()
    assert has.all() and max(audio_alone, video_alone) <= 0.6
    assert fused >= 0.85 and fused > max(audio_alone, video_alone) + 0.25
    if method == "late":
        assert 0.2 <= est.weight_ <= 0.8  # both count
    # the fused model's honest grouped-CV score says so as well, beside each branch's out-of-fold one
    cv = fusion_cv_accuracy(clone(est), X, y, g)
    assert cv.accuracy >= 0.85 and len(cv.folds) == 3
    if method != "early":
        assert cv.accuracy > max(est.oof_accuracy_["audio"], est.oof_accuracy_["video"]) + 0.25


def test_clips_without_audio_are_predicted_from_the_face_alone():
    X, y, g = split_signal(6)
    est = AudioVisualFusion(n_audio=6).fit(X, y, groups=g)
    Xt, yt, _ = split_signal(2, seed=2)
    Xt[::2, :6] = np.nan  # every other clip has no audio (a video-only clip)
    p = est.predict_proba(Xt)
    _, pv, has = est.branch_proba(Xt)
    assert not has[::2].any() and has[1::2].all()
    np.testing.assert_allclose(p[::2], pv[::2])
    assert est.audio_missing(Xt)[::2].all() and not est.audio_missing(Xt)[1::2].any()
    assert not hasattr(est, "audio_missing_")  # predicting never changes a fitted model
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-9)


def test_training_clips_without_audio_still_train_the_face():
    X, y, g = split_signal(6)
    X[: len(X) // 3, :6] = np.nan
    est = AudioVisualFusion(n_audio=6).fit(X, y, groups=g)
    assert est.video_[-1].n_features_in_ == 5 if hasattr(est.video_[-1], "n_features_in_") else True
    assert est.audio_[-2].n_samples_seen_ == len(X) - len(X) // 3  # imputer, scaler, LR


def test_contract_errors_and_saving():
    X, y, g = split_signal(4, per_class=3)
    est = AudioVisualFusion(method="stack", n_audio=6)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(UsageError, match="unknown fusion method"):
        AudioVisualFusion(method="max", n_audio=6).fit(X, y, groups=g)
    with pytest.raises(UsageError, match="audio columns"):
        AudioVisualFusion(n_audio=11).fit(X, y, groups=g)
    with pytest.raises(UsageError, match="two train actors"):
        AudioVisualFusion(n_audio=6).fit(X, y, groups=np.zeros(len(y)))
    no_voice = X.copy()
    no_voice[1:, :6] = np.nan  # as on the real subset: one training clip with speech
    with pytest.raises(UsageError, match=r"needs at least 6 clips with audio \(mp4 with speech\) in the train actors; "
                                         r"found 1$"):
        AudioVisualFusion(n_audio=6).fit(no_voice, y, groups=g)
    est.fit(X, y, groups=g)
    data, saved = dump_model(est)
    again = load_model(data, saved.to_dict())
    np.testing.assert_allclose(again.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("method", ["late", "stack", "early"])
def test_fusion_trains_and_predicts_with_a_gap_in_the_labels(method):
    """Emotions 01-06 and 08: the fused model's eight columns give the missing emotion nothing; predicting keeps the
    model as it was."""
    X, y, g = split_signal(6)
    keep = y != 6
    est = AudioVisualFusion(method=method, n_audio=6).fit(X[keep], y[keep], groups=g[keep])
    Xt, yt, _ = split_signal(2, seed=2)
    before = sorted(vars(est))
    p = est.predict_proba(Xt)
    assert p.shape == (len(Xt), 8) and np.allclose(p[:, 6], 0) and np.allclose(p.sum(axis=1), 1, atol=1e-9)
    pred = est.predict(Xt)
    assert 6 not in set(pred.tolist()) and np.mean(pred[yt != 6] == yt[yt != 6]) > 0.6
    assert sorted(vars(est)) == before


def test_a_refit_keeps_nothing_of_the_earlier_fit():
    """The same object fitted as ``late`` and then as ``early`` has only what an ``early`` fit makes."""
    X, y, g = split_signal(4, per_class=3)
    fresh = sorted(vars(AudioVisualFusion(method="early", n_audio=6).fit(X, y, groups=g)))
    est = AudioVisualFusion(method="stack", n_audio=6).fit(X, y, groups=g)
    assert hasattr(est, "oof_accuracy_") and hasattr(est, "stack_")
    est.set_params(method="early").fit(X, y, groups=g)
    assert sorted(vars(est)) == fresh and not hasattr(est, "oof_accuracy_") and not hasattr(est, "stack_")
    with pytest.raises(UsageError, match="unknown fusion method"):  # a failed fit leaves no earlier model behind
        est.set_params(method="max").fit(X, y, groups=g)
    assert not hasattr(est, "early_")


@pytest.mark.parametrize("method", ["late", "stack"])
def test_methods_chosen_by_grouped_cv_need_the_actors(method):
    """Without groups the folds would not be by actor: a clear error, never folds by row number."""
    X, y, g = split_signal(4, per_class=3)
    with pytest.raises(UsageError, match=rf"fusion-{method} is fitted by actor-grouped CV .*give groups"):
        AudioVisualFusion(method=method, n_audio=6).fit(X, y)
    with pytest.raises(UsageError, match="actor ids for"):
        AudioVisualFusion(method=method, n_audio=6).fit(X, y, groups=g[1:])


def test_every_method_is_scored_by_a_grouped_cv_that_refits_it_whole():
    """Outer GroupKFold by actor, the whole model (late's weight, stack's stacker) refitted on each fold's actors and
    scored per clip on the held-out actors' clips, those without audio from the face alone; the model given is not
    fitted."""
    from sklearn.model_selection import GroupKFold

    X, y, g = split_signal(6, per_class=3)
    X[::5, :6] = np.nan  # some clips without audio, in training and in the held-out folds
    for method in ("late", "stack", "early"):
        est = AudioVisualFusion(method=method, n_audio=6)
        cv = fusion_cv_accuracy(est, X, y, g)
        expected = [(clone(est).fit(X[tr], y[tr], groups=g[tr]).predict(X[te]) == y[te]).mean()
                    for tr, te in GroupKFold(3).split(X, y, g)]
        np.testing.assert_allclose(cv.folds, expected)
        assert cv.accuracy == pytest.approx(np.mean(expected)) and cv.std == pytest.approx(np.std(expected))
        assert "refitted in every fold" in cv.how and not hasattr(est, "classes_")


def test_fused_models_are_not_scored_with_fewer_than_three_actors_with_audio():
    """Two actors: a fold's training part would hold one, too few for late's and stack's inner CV; every method
    gets no score alike (and says why), so none wins on a score the others could not have."""
    X, y, g = split_signal(3, per_class=3)
    X[g == 2, :6] = np.nan  # the third actor has no audio
    for method in ("late", "stack", "early"):
        cv = fusion_cv_accuracy(AudioVisualFusion(method=method, n_audio=6), X, y, g)
        assert np.isnan(cv.accuracy) and cv.folds == ()
        assert cv.how == "not measured: grouped CV of a fused model needs at least 3 train actors with audio, found 2"
