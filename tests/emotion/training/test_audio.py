"""Splitting the feature table for training (one row per recording, speaker normalisation) and run outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emotion.core.ids import parse_id
from emotion.core.splits import ActorSplit
from emotion.models.catalog import SearchParams, model_spec
from emotion.store import catalog
from emotion.store.catalog import RunRecord
from emotion.training.audio import one_row_per_recording, run_version, split_data, train_and_evaluate
from tests.conftest import speaker_table

NAMES = ["f1", "f2", "f3"]
SPLIT = ActorSplit.parse("train=1-4,test=5")


def _table(stems: list[str]) -> pd.DataFrame:
    return pd.DataFrame([{"path": f"{s}.x", **parse_id(f"{s}.wav").labels()} for s in stems])


def test_speech_track_of_an_av_clip_is_dropped_when_its_audio_only_twin_is_there():
    df = _table(["03-01-05-01-01-01-12", "01-01-05-01-01-01-12",  # the same recording twice
                 "01-01-06-01-01-01-12",  # an audio-video clip without an audio-only twin: kept
                 "03-01-05-01-01-01-13"])
    out = one_row_per_recording(df)
    assert sorted(out["path"]) == ["01-01-06-01-01-01-12.x", "03-01-05-01-01-01-12.x", "03-01-05-01-01-01-13.x"]


def test_a_video_only_clip_is_dropped_when_its_audio_video_twin_is_there():
    """RAVDESS's 02 clip is its 01 clip without the sound: a face set holding both keeps the 01 clip only."""
    df = _table(["01-01-05-01-01-01-12", "02-01-05-01-01-01-12",  # the same recording twice
                 "02-01-06-01-01-01-12"])  # a video-only clip without an audio-video twin: kept
    assert sorted(one_row_per_recording(df)["path"]) == ["01-01-05-01-01-01-12.x", "02-01-06-01-01-01-12.x"]


def test_a_twin_among_the_faceless_clips_counts_once():
    """Of one recording's 01 and 02 clips, the 02 goes whether the 01 has a row or no face, and so the test
    clips count each recording once."""
    stems = [f"0{m}-01-0{e}-01-01-01-{a:02d}" for a in (1, 2, 3, 4, 5) for e in (3, 4) for m in (1, 2)]
    df = _table(stems).assign(content_hash="h", f=np.arange(len(stems), dtype=float))
    faceless = df[df["path"] == "01-01-03-01-01-01-05.x"][["path", "actor", "emotion", "content_hash"]]
    rows = df[df["path"] != "01-01-03-01-01-01-05.x"]
    data = split_data(rows, ["f"], SPLIT, "fh", faceless=faceless)
    assert sorted(data.test_rows["path"]) == ["01-01-04-01-01-01-05.x"]  # the 02 twins are gone
    assert list(data.test_faceless["path"]) == ["01-01-03-01-01-01-05.x"]
    assert len(data.y_train) == 8  # 4 actors x 2 recordings, each once
    both_faceless = split_data(rows[rows["path"] != "02-01-03-01-01-01-05.x"], ["f"], SPLIT, "fh",
                               faceless=pd.concat([faceless, df[df["path"] == "02-01-03-01-01-01-05.x"][faceless.columns]]))
    assert list(both_faceless.test_faceless["path"]) == ["01-01-03-01-01-01-05.x"]


def test_tables_without_av_clips_are_unchanged():
    df = _table(["03-01-05-01-01-01-12", "03-01-05-01-01-02-12"])
    assert one_row_per_recording(df) is df


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Five actors, each with a large speaker offset; the emotion moves f1, f2 within each speaker."""
    return speaker_table(tuple(NAMES))


def test_speaker_norm_standardises_each_actor_train_and_test(table):
    raw = split_data(table, NAMES, SPLIT, "fh")
    norm = split_data(table, NAMES, SPLIT, "fh", speaker_norm=True)
    assert not raw.speaker_norm and raw.fallback is None
    assert norm.speaker_norm and norm.fallback is not None
    for a in (1, 2, 3, 4):
        np.testing.assert_allclose(norm.X_train[norm.groups == a].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(norm.X_test.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(norm.X_test.std(axis=0), 1, atol=1e-4)
    np.testing.assert_array_equal(norm.y_train, raw.y_train)  # labels untouched
    np.testing.assert_allclose(norm.fallback.mean, raw.X_train.mean(axis=0), rtol=1e-5)
    assert norm.data_hash == raw.data_hash  # the same clips
    search = SearchParams(n_iter=1)
    assert run_version("lr", SPLIT, search, "fh", raw.data_hash) != run_version("lr", SPLIT, search, "fh", raw.data_hash, True)
    assert run_version("lr", SPLIT, search, "fh", raw.data_hash, False) == run_version("lr", SPLIT, search, "fh", raw.data_hash)


def test_speaker_norm_sees_one_row_per_recording(table):
    """The speech track of an AV clip twinning an audio-only clip is dropped before the actor statistics."""
    # label columns as in the store: every row an audio-only clip (03) with its own recording fields
    df = table.assign(modality=3, vocal_channel=1, intensity=[k // 8 for k in range(48)] * 5, statement=1, repetition=1)
    twins = df[df["actor"] == 1].head(10).assign(modality=1, content_hash=lambda d: d["content_hash"] + "-av",
                                                 path=lambda d: d["path"] + ".mp4", f1=1e3)  # far off: would shift stats
    with_twins = pd.concat([df, twins], ignore_index=True)
    plain = split_data(df, NAMES, SPLIT, "fh", speaker_norm=True)
    merged = split_data(with_twins, NAMES, SPLIT, "fh", speaker_norm=True)
    assert len(merged.y_train) == len(plain.y_train)
    np.testing.assert_array_equal(merged.X_train, plain.X_train)
    assert merged.data_hash == plain.data_hash


def test_outputs_record_features_and_speaker_norm_with_a_model_card(table):
    data = split_data(table, NAMES, SPLIT, "fh", speaker_norm=True)
    out = train_and_evaluate(model_spec("svc"), data, SPLIT, SearchParams(n_iter=4, refine=True), {"name": "extended"}, "fh")
    files = out.files()
    assert list(files)[-1] == "run.json"
    metrics, params, run = (json.loads(files[k]) for k in ("metrics.json", "params.json", "run.json"))
    for d in (metrics, params, run):
        assert d["speaker_norm"] is True
    assert metrics["features"] == "extended" == run["features"]
    assert run["revision"] == 1 == catalog.feature_run_revision(RunRecord.from_dict(run, split_id=SPLIT.id))
    norm = json.loads(files["normalization.json"])
    assert len(norm["fallback"]["mean"]) == 3
    card = files["model_card.md"].decode()
    for s in ("## Data", "## Split and selection", "## Features", "speaker normalisation: on", "## Metrics",
              "## Known limits", "North-American", "studio", f"training-data hash {run['data_hash']} "):
        assert s in card
    assert "data version" not in card  # the name of the extraction's hash (data-1a2b3c4d in the run names)
    assert metrics["accuracy"] > 0.8  # the within-speaker signal is found once the offsets are gone

    raw = train_and_evaluate(model_spec("svc"), split_data(table, NAMES, SPLIT, "fh"), SPLIT,
                             SearchParams(n_iter=4, refine=True), {"name": "extended"}, "fh")
    assert "normalization.json" not in raw.files()
    assert raw.metrics["accuracy"] < metrics["accuracy"] - 0.3  # the speaker offsets swamp the signal
    assert json.loads(raw.files()["metrics.json"])["speaker_norm"] is False
    assert "speaker normalisation: off" in raw.files()["model_card.md"].decode()


@pytest.mark.parametrize(("model", "emotions"), [
    ("lr", range(1, 8)), ("xgb", range(1, 7)), ("rf", (1, 3, 4, 5, 6, 7)),
    ("xgb", (1, 2, 3, 4, 5, 6, 8)), ("ensemble", (1, 2, 3, 4, 5, 6, 8)), ("svc", (2, 3, 5, 8)), ("xgb", (3, 5, 8)),
])
def test_a_corpus_without_every_emotion_trains_and_says_which_it_knows(table, model, emotions, monkeypatch):
    """Emotions 01-07 (no surprise), the song channel's six (no disgust, no surprise), and ones with gaps."""
    monkeypatch.setattr("emotion.models.ensemble.DEFAULT_CANDIDATES", ("lr", "xgb"))  # quick members (the MLP: test_models)
    sub = table[table["emotion"].isin(list(emotions))]
    data = split_data(sub, NAMES, SPLIT, "fh", speaker_norm=True)
    out = train_and_evaluate(model_spec(model), data, SPLIT, SearchParams(n_iter=2, refine=False), {"name": "seed"}, "fh")
    run = json.loads(out.files()["run.json"])
    labels = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    assert run["emotions"] == [labels[e - 1] for e in emotions]
    preds = pd.read_parquet(__import__("io").BytesIO(out.predictions))
    missing = [lab for k, lab in enumerate(labels, 1) if k not in emotions]
    assert all((preds[f"p_{m}"] == 0).all() for m in missing)
    assert np.allclose(preds[[f"p_{lab}" for lab in labels]].sum(axis=1), 1, atol=1e-4)
    assert set(preds["predicted"]) <= {labels[e - 1] for e in emotions}
    assert out.metrics["accuracy"] > 0.6 and out.metrics["emotions"] == run["emotions"]


def test_landmark_models_are_scored_on_every_test_clip_those_without_a_face_as_wrong(table):
    """A test clip without a face has no landmark row; it stays a test clip (as for cnn and fer), with no prediction."""
    faceless = pd.DataFrame({"path": ["n1.mp4", "n2.mp4", "n3.mp4"], "content_hash": ["c1", "c2", "c3"],
                             "actor": [5, 5, 1], "emotion": [1, 2, 1]})  # the third: a training actor's, unused
    plain = split_data(table, NAMES, SPLIT, "fh")
    data = split_data(table, NAMES, SPLIT, "fh", faceless=faceless)
    assert list(data.test_faceless["path"]) == ["n1.mp4", "n2.mp4"] and data.data_hash != plain.data_hash
    assert split_data(table, NAMES, SPLIT, "fh", faceless=faceless.iloc[2:]).data_hash == plain.data_hash
    out = train_and_evaluate(model_spec("lr"), data, SPLIT, SearchParams(n_iter=1, refine=False),
                             {"name": "landmarks"}, "fh")
    m = out.metrics
    assert m["modality"] == "video" and m["n_test"] == len(plain.y_test) + 2 and m["n_test_clips_without_face"] == 2
    assert m["confusion_no_face"][:2] == [1, 1] and np.array(m["confusion_matrix"]).sum() == len(plain.y_test)
    scored = np.sum(np.diag(m["confusion_matrix"]))
    assert m["accuracy"] == pytest.approx(scored / (len(plain.y_test) + 2))
    preds = pd.read_parquet(__import__("io").BytesIO(out.predictions)).set_index("path")
    assert list(preds.loc[["n1.mp4", "n2.mp4"], "predicted"]) == ["no face", "no face"]
    card = out.files()["model_card.md"].decode()
    assert "2 of the test clips had no face" in card
    audio = train_and_evaluate(model_spec("lr"), plain, SPLIT, SearchParams(n_iter=1, refine=False),
                               {"name": "seed"}, "fh")
    assert "n_test_clips_without_face" not in audio.metrics  # an audio model has every clip
    # a review: the two lr runs' cards and confusion matrices had one title, and the face's card the voice's limits
    voice = audio.files()["model_card.md"].decode()
    assert card.startswith("# Model card: Logistic regression (multinomial, L2) · video · landmarks\n")
    assert voice.startswith("# Model card: Logistic regression (multinomial, L2) · audio · seed\n")
    assert "acted faces" in card and "microphone" not in card and "normalised towards neutral" not in card
    assert "microphone" in voice and "acted faces" not in voice


def test_metrics_and_model_card_name_the_actors_trained_and_tested_not_the_split(table):
    """The split names actors 1-16 / 17-20 and 5 / 6-9; the data holds 1-4 and 5: those are what was used."""
    split = ActorSplit.parse("train=1-4,10-16,test=5,17-20")
    out = train_and_evaluate(model_spec("lr"), split_data(table, NAMES, split, "fh"), split,
                             SearchParams(n_iter=1, refine=False), {"name": "seed"}, "fh")
    metrics = json.loads(out.files()["metrics.json"])
    assert metrics["train_actors"] == [1, 2, 3, 4] and metrics["test_actors"] == [5]
    card = out.files()["model_card.md"].decode()
    assert "training clips of actors [1, 2, 3, 4];" in card and "test clips of actors [5] " in card
    assert "split train=01-04,10-16,test=05,17-20" in card  # the split as given, beside
