"""Prediction on new files with a model trained here in-process (the CLI path is in tests/flows/test_cli.py)."""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import ModelIntegrityError, StoreError, UsageError
from emotion.core.ids import EMOTION_LABELS
from emotion.core.splits import ActorSplit
from emotion.extract.chunk import extract_audio_chunk
from emotion.extract.inventory import take_inventory
from emotion.models.catalog import SearchParams, model_spec
from emotion.predict import Prediction, ZeroShotFaceModel, choose_runs, load_predictors, predict_file, predict_files
from emotion.store.sources import DataRoot
from emotion.store.store import Store
from emotion.training.audio import split_data, train_and_evaluate

PARAMS = AudioFeatureParams()
SPLIT = ActorSplit.parse("train=1-3,test=21")


def train_run(store: Store, model: str = "svc", split: ActorSplit = SPLIT) -> str:
    df = store.read_features("audio", PARAMS.key)
    data = split_data(df, PARAMS.feature_names(), split, PARAMS.hash())
    res = train_and_evaluate(model_spec(model), data, split, SearchParams(n_iter=2, refine=False), PARAMS.to_dict(),
                             PARAMS.hash(), n_jobs=1)
    folder = store.run_dir(split.id, model, res.version)
    for name, blob in res.files().items():
        store.write_bytes(posixpath.join(folder, name), blob)
    return folder


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, str]:
    out = tmp_path_factory.mktemp("predict") / "store"
    inv = take_inventory(DataRoot(str(tiny_corpus)))
    extract_audio_chunk([r for r, _, _ in inv.clips], str(tiny_corpus), str(out), PARAMS)
    store = Store(str(out))
    return tiny_corpus, store, train_run(store)


def _check_shape(p: Prediction) -> None:
    assert list(p.probabilities) == list(EMOTION_LABELS)
    assert abs(sum(p.probabilities.values()) - 1) < 1e-9 and all(0 <= v <= 1 for v in p.probabilities.values())
    assert p.emotion == max(p.probabilities, key=p.probabilities.get)


def test_predictions_agree_with_the_runs_own_test_predictions(trained):
    """Features computed at predict time from run.json's parameters are the training features: same outcomes."""
    data, store, run = trained
    pred = load_predictors(store.url)
    assert pred.audio is not None and pred.audio.name == run
    stored = pd.read_parquet(posixpath.join(run, "predictions.parquet"))
    for _, row in stored.head(12).iterrows():
        p = predict_file(str(data / row["path"]), pred)
        _check_shape(p)
        assert p.emotion == row["predicted"] and p.label == row["emotion_label" if "emotion_label" in row else "true"]
        np.testing.assert_allclose([p.probabilities[e] for e in EMOTION_LABELS],
                                   [row[f"p_{e}"] for e in EMOTION_LABELS], atol=1e-5)
        assert p.model == run and p.modalities_used == ["audio"] and p.timeline is None


def test_a_speaker_normalised_run_predicts_one_file_with_the_pooled_training_statistics(trained, tmp_path):
    data, store, _ = trained
    df = store.read_features("audio", PARAMS.key)
    sd = split_data(df, PARAMS.feature_names(), SPLIT, PARAMS.hash(), speaker_norm=True)
    res = train_and_evaluate(model_spec("lr"), sd, SPLIT, SearchParams(n_iter=2, refine=False), PARAMS.to_dict(),
                             PARAMS.hash(), n_jobs=1)
    folder = tmp_path / "norm-run"
    folder.mkdir()
    for name, blob in res.files().items():
        (folder / name).write_bytes(blob)
    pred = load_predictors(model_path=str(folder))
    row = df.iloc[0]
    p = predict_file(str(data / row["path"]), pred)
    _check_shape(p)
    assert p.modalities_used == ["audio"] and any("pooled training statistics" in n for n in p.notes)
    x = sd.fallback.apply(df.loc[[df.index[0]], PARAMS.feature_names()].to_numpy(np.float32))
    expected = pred.audio.estimator.predict_proba(x)[0]
    got = [p.probabilities[EMOTION_LABELS[c]] for c in pred.audio.classes]
    np.testing.assert_allclose(got, expected / expected.sum(), atol=1e-4)
    (folder / "normalization.json").unlink()
    with pytest.raises(UsageError, match="normalization.json"):
        load_predictors(model_path=str(folder))


def test_same_speaker_clips_are_normalised_by_their_own_statistics_as_in_training(trained, tmp_path):
    """All of a test actor's clips with --same-speaker: exactly the run's own (speaker-normalised) test predictions."""
    data, store, _ = trained
    df = store.read_features("audio", PARAMS.key)
    sd = split_data(df, PARAMS.feature_names(), SPLIT, PARAMS.hash(), speaker_norm=True)
    res = train_and_evaluate(model_spec("lr"), sd, SPLIT, SearchParams(n_iter=2, refine=False), PARAMS.to_dict(),
                             PARAMS.hash(), n_jobs=1)
    folder = tmp_path / "norm-run"
    folder.mkdir()
    for name, blob in res.files().items():
        (folder / name).write_bytes(blob)
    stored = pd.read_parquet(folder / "predictions.parquet")
    files = [str(data / p) for p in stored["path"]]
    assert len(files) >= 8
    results = predict_files(files, load_predictors(model_path=str(folder)), same_speaker=True)
    for r, (_, row) in zip(results, stored.iterrows(), strict=True):
        assert isinstance(r, Prediction) and any(f"the {len(files)} given clips of one speaker" in n for n in r.notes)
        np.testing.assert_allclose([r.probabilities[e] for e in EMOTION_LABELS],
                                   [row[f"p_{e}"] for e in EMOTION_LABELS], atol=1e-4)
    ticks: list = []
    few = predict_files(files[:3], load_predictors(model_path=str(folder)), same_speaker=True, progress=ticks.append)
    assert [(t.done, t.total) for t in ticks] == [(0, 3), (1, 3), (2, 3), (3, 3)]  # a display's clock starts at 0
    assert all(any("only 3 clip(s)" in n and "pooled training statistics" in n for n in r.notes) for r in few)
    # the same loaded models give the same answer however often and in whatever order they are called (issue 13):
    # --same-speaker, then without it, is without it alone
    loaded = load_predictors(model_path=str(folder))
    first = predict_files(files, loaded, same_speaker=True)
    after = predict_files(files, loaded)
    alone = predict_files(files, load_predictors(model_path=str(folder)))
    assert [r.to_dict() for r in after] == [r.to_dict() for r in alone]  # type: ignore[union-attr]
    assert [r.to_dict() for r in predict_files(files, loaded, same_speaker=True)] == [r.to_dict() for r in first]  # type: ignore[union-attr]
    assert all(any("pooled training statistics" in n for n in r.notes) for r in alone)  # type: ignore[union-attr]


def test_a_file_without_a_ravdess_name_is_predicted(trained, tmp_path):
    data, store, _ = trained
    src = data / "Actor_21" / "03-01-05-02-01-01-21.wav"
    if not src.exists():
        src = next((data / "Actor_21").glob("03-01-05-02-01-01-21.*"))
    mine = tmp_path / f"my recording (take 2){src.suffix}"
    shutil.copy(src, mine)
    pred = load_predictors(store.url)
    a, b = predict_file(str(src), pred), predict_file(str(mine), pred)
    assert b.label is None and a.label == "angry"
    assert b.emotion == a.emotion and b.probabilities == a.probabilities


def test_mp4_speech_is_predicted_and_a_silent_track_says_audio_absent(trained, tmp_path):
    from emotion.core.ids import parse_id
    from emotion.video.synth import VideoSynthParams, write_clip

    _, store, _ = trained
    pred = load_predictors(store.url)
    av_clip, silent = tmp_path / "01-01-05-02-01-01-21.mp4", tmp_path / "02-01-05-02-01-01-21.mp4"
    vp = VideoSynthParams(duration=1.4)
    write_clip(av_clip, parse_id(av_clip.name), vp)
    write_clip(silent, parse_id(silent.name), vp)  # video-only: a silent AAC track
    p = predict_file(str(av_clip), pred)
    _check_shape(p)
    # a store without a face model: the voice gives the outcome, the pretrained FER2013 model reads the face zero-shot
    assert p.modalities_used == ["audio"] and p.model == pred.audio.name
    assert p.timeline and p.timeline_model.startswith("zero-shot FER2013") and p.timeline_outcome["emotion"]
    assert any(n.startswith("outcome from the trained voice model; the zero-shot face alone says") for n in p.notes)
    q = predict_file(str(silent), pred)  # no voice: the zero-shot face gives the outcome, and says so
    assert q.modalities_used == ["video"] and q.emotion == q.timeline_outcome["emotion"] and q.model == q.timeline_model
    assert q.probabilities["calm"] == 0.0  # FER2013 has no calm
    assert any(n.startswith("audio absent: the audio track is silent") for n in q.notes)
    assert any("zero-shot" in n for n in q.notes)
    assert json.loads(json.dumps(q.to_dict()))["emotion"] == q.emotion


def test_an_mp4_without_a_video_stream_is_predicted_from_its_voice(trained, tmp_path):
    """An audio-only mp4 (a voice memo): extraction keeps its speech, so prediction uses it too; the face is noted."""
    import av
    import soundfile as sf

    data, store, _ = trained
    voice, sr = sf.read(str(next((data / "Actor_21").glob("*.*"))), dtype="float32")
    clip = tmp_path / "memo.mp4"
    with av.open(str(clip), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=sr)
        fr = av.AudioFrame.from_ndarray(voice.reshape(1, -1), format="flt", layout="mono")
        fr.sample_rate = sr
        for pkt in [*s.encode(fr), *s.encode()]:
            out.mux(pkt)
    preds = load_predictors(store.url)
    assert preds.video is not None  # the zero-shot face model is asked first, and finds no video stream
    p = predict_file(str(clip), preds)
    _check_shape(p)
    assert p.modalities_used == ["audio"] and p.model == preds.audio.name and not p.timeline
    assert "no video stream in the file: the face is not used" in p.notes


def test_a_store_with_nothing_trained_yet_reads_faces_zero_shot_and_says_what_to_run(tmp_path):
    """As without a store: the face is read by the pretrained model, and the voice's note says to train first. A
    split asked for by name that has no model is still an error (a typo must not pass for "nothing trained")."""
    out = tmp_path / "store"
    out.mkdir()
    preds = load_predictors(str(out))
    assert preds.audio is None and preds.fusion is None and isinstance(preds.video, ZeroShotFaceModel)
    assert preds.elsewhere == {"audio": f"no trained model in {out}: run `emotion train {out}` first"}
    with pytest.raises(StoreError, match="no trained audio/video/fusion model .* for split train01-20_test21-24"):
        load_predictors(str(out), split="train=1-20,test=21-24")
    # clips of actors the default split cannot serve: the command told has a split they allow (the bare one failed)
    import pyarrow as pa

    paths = [f"Actor_{a:02d}/03-01-03-01-01-01-{a:02d}.wav" for a in range(1, 7)]
    Store(str(out)).write_table(Store(str(out)).path("manifest", "audio.parquet"), pa.table({"path": paths}))
    assert load_predictors(str(out)).elsewhere == {
        "audio": f"no trained model in {out}: run `emotion train {out} --split train=01-05,test=06` first"}


@pytest.mark.real_data
def test_predict_without_any_store_reads_real_faces_zero_shot():
    from tests.conftest import real_video_files

    preds = load_predictors(None)
    assert preds.audio is None and preds.fusion is None and isinstance(preds.video, ZeroShotFaceModel)
    happy = next(f for f in real_video_files() if f.name == "01-01-03-01-01-02-05.mp4")
    p = predict_file(str(happy), preds)
    assert p.emotion == "happy" and p.modalities_used == ["video"] and len(p.timeline) == 5
    assert p.model == p.timeline_model and p.timeline_outcome["emotion"] == p.emotion
    assert "no audio model: the voice is not used" in p.notes


@pytest.mark.real_data
def test_kept_frames_without_a_face_are_in_the_timeline_and_said(tmp_path, capsys):
    """A review: with the face gone from frames 30-69, frames 40 and 60 left the timeline and nothing said so."""
    import av

    from emotion.video.frames import upright
    from flows.cli.render import print_predictions
    from tests.conftest import real_video_files, write_turned_clip

    happy = next(f for f in real_video_files() if f.name == "01-01-03-01-01-02-05.mp4")
    with av.open(happy) as c:
        rgb = [upright(fr, "rgb24") for fr in c.decode(video=0)]
    rgb = [np.zeros_like(f) if 30 <= i < 70 else f for i, f in enumerate(rgb)]
    p = predict_file(str(write_turned_clip(tmp_path / happy.name, rgb, 0)), load_predictors(None))
    assert [(t.frame_index, t.face) for t in p.timeline] == [(0, True), (20, True), (40, False), (60, False),
                                                             (80, True)]
    assert p.timeline[2].top == () and len(p.timeline[0].top) == 2
    assert "face found in 3 of the 5 kept frames: the face's outcome is from those" in p.notes
    print_predictions({"files": [p.to_dict()]})
    text = capsys.readouterr().out
    assert "frame   40  no face" in text
    assert "clip outcome of this face model" not in text  # the outcome's own model: said once, above


@pytest.mark.real_data
def test_a_real_clip_stored_turned_by_a_phone_is_read_as_upright(tmp_path):
    """Prediction decodes as extraction does: a clip stored upside down or on its side, with the display matrix
    that turns it back, is read as the clip itself (left upside down, the happy clip was read as sad)."""
    import av

    from emotion.video.frames import upright
    from tests.conftest import real_video_files, write_turned_clip

    preds = load_predictors(None)
    happy = next(f for f in real_video_files() if f.name == "01-01-03-01-01-02-05.mp4")
    with av.open(happy) as c:
        rgb = [upright(fr, "rgb24") for fr in c.decode(video=0)]
    clip = predict_file(str(write_turned_clip(tmp_path / "upright.mp4", rgb, 0)), preds)
    for rotate in (180, 90):
        p = predict_file(str(write_turned_clip(tmp_path / f"turned{rotate}.mp4", rgb, rotate)), preds)
        assert p.emotion == clip.emotion == "happy" and len(p.timeline) == len(clip.timeline) == 5
        assert p.probabilities == pytest.approx(clip.probabilities, abs=0.05), rotate


def test_bad_files_get_their_own_error_and_the_others_are_predicted(trained, tmp_path):
    data, store, _ = trained
    good = str(next((data / "Actor_21").glob("*.*")))
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "song.mp3").write_bytes(b"ID3")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    files = [good, str(tmp_path / "missing.wav"), str(tmp_path / "noise.wav"), str(tmp_path / "song.mp3"),
             str(tmp_path / "broken.mp4"), str(tmp_path / "dangling.wav"), good]
    out = predict_files(files, load_predictors(store.url))
    assert isinstance(out[0], Prediction) and isinstance(out[6], Prediction)
    errors = {Path(f).name: e for f, e in out[1:6]}  # type: ignore[misc]
    assert errors["missing.wav"] == "file not found"
    assert errors["dangling.wav"] == "broken symbolic link"  # as extract says it
    assert errors["noise.wav"].startswith("cannot decode audio")
    assert errors["song.mp3"].startswith("unsupported file type '.mp3'")
    assert errors["broken.mp4"].startswith("cannot open video")


def test_a_file_on_object_storage_is_said_to_be_one_not_missing():
    """An S3 walkthrough: `predict --store s3://... s3://bucket/data/x.wav` said "file not found"."""
    [(path, why)] = predict_files(["s3://bucket/data/03-01-01-01-01-01-01.wav"], load_predictors(None))
    assert why == "s3:// files are not read: predict reads files of this machine (copy it here first)"


def test_a_folder_given_as_a_file_is_named_as_such(tmp_path):
    from emotion.core.errors import RejectedInput
    from emotion.predict import read_file

    for folder in (tmp_path / "Actor_01", tmp_path / "clips.wav"):
        folder.mkdir()
        with pytest.raises(RejectedInput, match=r"^a folder, not a file: give .wav, .flac or .mp4 files \(it holds "
                                                r"none directly\)$"):
            read_file(str(folder))
    # the kind of file it holds most of (a folder of FLAC files was told *.mp4)
    for name in ("a.flac", "b.flac", "c.mp4", "notes.txt"):
        (tmp_path / "Actor_01" / name).write_bytes(b"x")
    with pytest.raises(RejectedInput, match=rf"^a folder, not a file: give its .wav, .flac or .mp4 files "
                                            rf"\(e.g. {tmp_path}/Actor_01/\*.flac\)$"):
        read_file(str(tmp_path / "Actor_01") + "/")


def test_a_tampered_or_swapped_model_file_is_refused(trained, tmp_path):
    _, store, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    info = json.loads((copy / "run.json").read_text())
    assert load_predictors(model_path=str(copy)).audio is not None  # the copy itself is fine
    assert load_predictors(model_path=str(copy / info["model_file"]["file"])).audio is not None
    with pytest.raises(ModelIntegrityError, match="not the model file recorded in run.json"):
        load_predictors(model_path=str(copy / "predictions.parquet"))
    model = copy / info["model_file"]["file"]
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    model.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="does not match the recorded") as exc:
        load_predictors(model_path=str(copy))
    assert "\n" not in str(exc.value)
    # a store whose chosen run was tampered with is refused the same way
    tampered = tmp_path / "store"
    shutil.copytree(store.root, tampered)
    rel = Path(run).relative_to(store.root)
    (tampered / rel / info["model_file"]["file"]).write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError):
        load_predictors(str(tampered))


def test_model_choice_prefers_the_default_split_then_the_newest_and_picks_by_grouped_cv(trained, tmp_path):
    _, store, run = trained
    out = tmp_path / "store"
    shutil.copytree(store.root, out)
    s = Store(str(out))
    assert choose_runs(s)["audio"].split_id == SPLIT.id
    with pytest.raises(StoreError, match="no trained audio model"):
        choose_runs(Store(str(tmp_path / "empty")))
    # a second split trained later is the newest; the default split wins whenever it exists
    later = ActorSplit.parse("train=2-3,21,test=1")
    folder = train_run(s, "rf", later)
    os.utime(posixpath.join(folder, "run.json"))
    assert choose_runs(s)["audio"].split_id == later.id
    assert choose_runs(s, split="train=1-3,test=21")["audio"].split_id == SPLIT.id
    default_dir = out / "runs" / "train01-20_test21-24"
    shutil.copytree(Path(run), default_dir / "svc" / Path(run).name)
    os.utime(posixpath.join(folder, "run.json"))
    assert choose_runs(s)["audio"].split_id == "train01-20_test21-24"
    # within a split, the best grouped-CV accuracy wins, not the best test accuracy
    rdir = default_dir / "rf" / "x"
    shutil.copytree(Path(run), rdir)
    metrics = json.loads((rdir / "metrics.json").read_text())
    svc_cv = metrics["cv_accuracy"]
    metrics.update(accuracy=1.0, cv_accuracy=svc_cv - 0.1)
    (rdir / "metrics.json").write_text(json.dumps(metrics))
    info = json.loads((rdir / "run.json").read_text())
    info["model"] = "rf"
    (rdir / "run.json").write_text(json.dumps(info))
    assert choose_runs(s)["audio"].model == "svc"
    metrics["cv_accuracy"] = svc_cv + 0.1
    (rdir / "metrics.json").write_text(json.dumps(metrics))
    assert choose_runs(s)["audio"].model == "rf"


def test_without_split_or_default_the_split_trained_last_is_the_one_with_the_newest_run_of_any_model(trained, tmp_path):
    """Not the split whose selected run is newest: a split trained today whose best model is an older run was passed
    over for one trained yesterday (the README promises "the split trained last")."""
    _, store, run = trained
    out = tmp_path / "store"
    shutil.copytree(store.root, out)
    s = Store(str(out))
    a_svc = out / Path(run).relative_to(store.root)  # split A: svc, the best by grouped CV, written first
    other = ActorSplit.parse("train=2-3,21,test=1")  # split B: one run, written next
    b_svc = out / "runs" / other.id / "svc" / a_svc.name
    shutil.copytree(a_svc, b_svc)
    a_rf = a_svc.parent.parent / "rf" / "x"  # split A again: rf, worse by grouped CV, written last
    shutil.copytree(a_svc, a_rf)
    metrics = json.loads((a_rf / "metrics.json").read_text())
    metrics["cv_accuracy"] -= 0.1
    (a_rf / "metrics.json").write_text(json.dumps(metrics))
    info = json.loads((a_rf / "run.json").read_text())
    info["model"] = "rf"
    (a_rf / "run.json").write_text(json.dumps(info))
    for t, folder in ((1_000_000, a_svc), (2_000_000, b_svc), (3_000_000, a_rf)):
        os.utime(folder / "run.json", (t, t))
    chosen = choose_runs(s)["audio"]
    assert (chosen.split_id, chosen.model) == (SPLIT.id, "svc")  # split A, trained last; in it, the best by CV
    os.utime(b_svc / "run.json", (4_000_000, 4_000_000))  # split B retrained since
    assert choose_runs(s)["audio"].split_id == other.id


def test_a_split_is_given_as_written_or_by_its_id_and_one_with_nothing_trained_lists_those_trained(trained):
    _, store, _ = trained
    assert choose_runs(store, split=SPLIT.id)["audio"].split_id == SPLIT.id
    assert choose_runs(store, split=" train=1-3, test=21")["audio"].split_id == SPLIT.id
    with pytest.raises(UsageError, match=r"^bad split 'foo': write it like train=1-20,test=21-24 \(or by its id, "
                                         r"like train01-20_test21-24\)$"):
        choose_runs(store, split="foo")
    with pytest.raises(StoreError, match=rf"for split train05-06_test07 \(trained splits: {SPLIT.id}\)$"):
        choose_runs(store, split="train=5-6,test=7")


def test_model_takes_a_run_folder_or_its_model_file_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as exc:
        load_predictors(model_path="lr")
    assert str(exc.value) == ("--model takes a run folder or the model file inside it (OUT/runs/SPLIT/MODEL/VERSION); "
                              "'lr' is neither: no such file or folder (--store OUT picks the store's best model)")


# -- issue 16: nothing in a store or on the command line reads outside, without bound, or blocks ---------------------
@pytest.mark.parametrize("name", ["../../../../etc/hostname", "/etc/hostname", "/dev/zero"])
def test_the_model_file_must_be_a_file_of_its_run_folder(trained, tmp_path, name):
    _, store, folder = trained
    run = tmp_path / "run"
    shutil.copytree(folder, run)
    info = json.loads((run / "run.json").read_text())
    info["model_file"]["file"] = name
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(ModelIntegrityError, match="not a file of the run folder"):
        load_predictors(model_path=str(run))


def test_a_model_file_that_is_a_fifo_or_a_device_is_refused_unread(trained, tmp_path):
    _, store, folder = trained
    run = tmp_path / "run"
    shutil.copytree(folder, run)
    name = json.loads((run / "run.json").read_text())["model_file"]["file"]
    (run / name).unlink()
    os.mkfifo(run / name)  # reading it would block forever
    with pytest.raises(StoreError, match="not a regular file"):
        load_predictors(model_path=str(run))


def test_a_bad_run_json_in_one_run_folder_does_not_block_the_others(trained, tmp_path):
    data, store, folder = trained
    copy = tmp_path / "store"
    shutil.copytree(store.root, copy)
    broken = copy / "runs" / SPLIT.id / "rf" / "deadbeef"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text("{ not json")
    (broken / "metrics.json").write_text("{}")
    pred = load_predictors(str(copy))
    assert pred.audio is not None and "/svc/" in pred.audio.name


def test_predicting_a_fifo_is_refused_without_blocking(trained, tmp_path):
    _, store, _ = trained
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    [res] = predict_files([str(fifo)], load_predictors(store.url))
    assert res[1] == "not a regular file (a pipe, socket or device); refusing to read it"


def test_same_speaker_counts_distinct_recordings(trained, tmp_path):
    data, store, _ = trained
    df = store.read_features("audio", PARAMS.key)
    sd = split_data(df, PARAMS.feature_names(), SPLIT, PARAMS.hash(), speaker_norm=True)
    res = train_and_evaluate(model_spec("lr"), sd, SPLIT, SearchParams(n_iter=2, refine=False), PARAMS.to_dict(),
                             PARAMS.hash(), n_jobs=1)
    folder = store.run_dir(SPLIT.id, "lr-norm", res.version)
    for name, blob in res.files().items():
        store.write_bytes(posixpath.join(folder, name), blob)
    one = str(next((data / "Actor_21").iterdir()))
    results = predict_files([one] * 8, load_predictors(model_path=folder), same_speaker=True)
    assert all(any("only 1 clip(s)" in n for n in r.notes) for r in results)
    # an audio-video clip's track is its audio-only clip's recording (other bytes, the same performance): the two
    # count once, the audio-only one, as in training
    import soundfile as sf

    clips = sorted((data / "Actor_21").iterdir())[:5]
    twins = []
    for c in clips:
        y, sr = sf.read(str(c), dtype="float32")
        twin = tmp_path / ("01" + c.name[2:])
        sf.write(str(twin), 0.9 * y, sr)
        twins.append(str(twin))
    both = [str(c) for c in clips] + twins
    results = predict_files(both, load_predictors(model_path=folder), same_speaker=True)
    assert all(any("only 5 clip(s)" in n for n in r.notes) for r in results)  # not 10
    # an audio-only file that cannot be read: its recording's audio-video clip counts instead (it counted none)
    broken = tmp_path / clips[0].name
    broken.write_bytes(b"not audio at all")
    results = predict_files([str(broken), *both[1:]], load_predictors(model_path=folder), same_speaker=True)
    assert isinstance(results[0], tuple) and len(results) == 10
    assert all(any("only 5 clip(s)" in n for n in r.notes) for r in results[1:])  # type: ignore[union-attr]


def test_inputs_unlike_speech_are_flagged(trained, tmp_path):
    import soundfile as sf

    _, store, _ = trained
    sr = 22050
    dc = tmp_path / "dc.wav"
    sf.write(dc, np.full(sr * 2, 0.5, dtype=np.float32), sr)
    noise = tmp_path / "noise.wav"
    sf.write(noise, np.random.default_rng(0).normal(0, 0.2, sr * 40).astype(np.float32), sr)
    pred = load_predictors(store.url)
    out = {Path(r.file).name: r for r in predict_files([str(dc), str(noise)], pred)}
    assert "constant" in out["dc.wav"].unlike_speech and "flat as noise" in out["noise.wav"].unlike_speech
    assert any(n.startswith("warning: input unlike the training speech") for n in out["dc.wav"].notes)
    speech = predict_file(str(next(Path(trained[0]).rglob("*.wav"))), pred)  # a synthetic clip: not flagged
    assert speech.unlike_speech is None


def test_a_split_without_a_voice_model_says_which_split_has_one(trained, tmp_path, monkeypatch):
    """As on the real store: a face-only smoke run trained last left `predict x.flac --store` with 'no audio model'."""
    import emotion.predict.runs as runs

    corpus, store, run = trained
    out = tmp_path / "store"
    shutil.copytree(store.root, out)
    face_only = out / "runs" / "train01_test05" / "cnn" / "v1"  # stands for a video run trained later
    shutil.copytree(Path(run), face_only)
    for name, changes in (("run.json", {"model": "cnn", "modality": "video", "split": "train=01,test=05",
                                         "split_id": "train01_test05"}), ("metrics.json", {"modality": "video"})):
        d = json.loads((face_only / name).read_text())
        d.update(changes)
        (face_only / name).write_text(json.dumps(d))
    os.utime(face_only / "run.json")
    monkeypatch.setattr(runs, "_predictors_of", lambda chosen: runs.Predictors())  # loading is tested elsewhere
    pred = load_predictors(str(out))
    assert pred.elsewhere["audio"] == ("none in split train01_test05, the split trained last; split "
                                       f"{SPLIT.id} has one: --split {SPLIT}")
    assert load_predictors(str(out), split=str(SPLIT)).elsewhere == {}  # a split asked for: nothing to point at
    wav = next(corpus.rglob("*.wav"))
    note = predict_file(str(wav), runs.Predictors(elsewhere=pred.elsewhere)).notes
    assert f"no audio model: the voice is not used (none in split train01_test05, the split trained last; split " \
           f"{SPLIT.id} has one: --split {SPLIT})" in note


def test_a_voice_recorded_below_the_features_rate_is_predicted_with_a_note(trained, tmp_path):
    import soundfile as sf

    _, store, _ = trained
    clip = next(Path(trained[0]).rglob("03-01-05-*.wav"), None) or next(Path(trained[0]).rglob("03-01-05-*.flac"))
    y, sr = sf.read(str(clip), dtype="float32")
    from emotion.audio.decode import resample

    narrow = tmp_path / "phone.wav"
    sf.write(narrow, resample(y if y.ndim == 1 else y.mean(axis=1), sr, 8000), 8000)
    pred = load_predictors(store.url)
    out = {Path(r.file).name: r for r in predict_files([str(narrow), str(clip)], pred)}
    assert out["phone.wav"].emotion is not None  # still predicted
    assert any(n.startswith("note: the voice was recorded at 8000 Hz, below the 22050 Hz") for n in out["phone.wav"].notes)
    assert not any("recorded at" in n for n in out[clip.name].notes)  # the full-band clip: nothing said


def test_a_models_folder_given_as_a_run_names_the_runs_in_it(trained, tmp_path):
    """A walkthrough: `--model OUT/runs/SPLIT/lr` said only "no run.json (not a trained run folder)"."""
    from emotion.core.errors import UsageError

    _, _, run = trained
    model_dir = posixpath.dirname(run)
    with pytest.raises(UsageError, match=rf"^{model_dir}: no run.json \(not a trained run folder\); the runs in it, "
                                         rf"newest first: {run}$"):
        load_predictors(model_path=model_dir)
    with pytest.raises(UsageError, match=r"\(not a trained run folder\)$"):  # no runs under it: nothing more to say
        load_predictors(model_path=str(tmp_path))
