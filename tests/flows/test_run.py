"""flows.run: what the pipeline skips, and says so, rather than fail after training the rest."""

from __future__ import annotations

from flows.run import skip_video_note


def test_video_clips_without_the_splits_test_or_train_actors_are_named_for_skipping_with_a_split_they_allow():
    # the wording of emotion.core.splits.lacking_actors, the one that says what to give instead
    assert skip_video_note((1, 5), "train=1-16,test=17-20") == (
        "video and fused models skipped: no video clips of the test actors of train=01-16,test=17-20 in the store "
        "(actors present: 01,05); give e.g. --split train=01,test=05")
    assert skip_video_note((18, 19), "train=1-16,test=17-20") == (
        "video and fused models skipped: no video clips of the train actors of train=01-16,test=17-20 in the store "
        "(actors present: 18-19); give e.g. --split train=18,test=19")
    # a served run logs it with the deployment's parameter (deployments.served.ServedNotes)
    assert skip_video_note((1, 5), "train=1-16,test=17-20").served_message() == (
        "video and fused models skipped: no video clips of the test actors of train=01-16,test=17-20 in the store "
        "(actors present: 01,05); set split to e.g. train=01,test=05")
    assert skip_video_note((1, 18), "train=1-16,test=17-20") is None  # both sides: trained as usual
    assert skip_video_note((), "train=1-16,test=17-20") is None  # not recorded: the training says what lacks


def test_a_run_lists_the_data_root_once_for_its_split_check_and_its_extractions(corpus, tmp_path, monkeypatch):
    """The split check's listing of the data root is the one the audio extraction (the same extensions) and the
    frame extraction (the mp4s among them) take their inventory from: one listing, the same clips extracted."""
    import pytest

    import flows.run as run
    from emotion.core.errors import EmotionError
    from emotion.models.search import SearchParams
    from emotion.store.sources import DataRoot

    walks: list[str] = []
    walk = DataRoot._walk

    def counted(self):
        walks.append(self.url)
        return walk(self)

    monkeypatch.setattr(DataRoot, "_walk", counted)
    monkeypatch.setattr(run, "train_models", lambda *a, **k: {"models": []})  # training is not what is counted
    r = run.run_pipeline(str(corpus), str(tmp_path / "store"), "train=1-3,test=21", ("lr", "cnn"), "seed",
                         SearchParams(n_iter=1, cv_folds=2), "all", workers=1)
    assert walks == [str(corpus)]
    assert r["extract"]["audio"]["processed"] == 120 and r["extract"]["video"]["processed"] == 0
    assert "no video clips under the data root: video models skipped" in r["notes"]

    walks.clear()  # a split the data does not allow still fails before any extraction, from that one listing
    with pytest.raises(EmotionError, match="test actors"):
        run.run_pipeline(str(corpus), str(tmp_path / "store"), "train=1-3,test=22", ("lr",), "seed", modality="audio")
    assert walks == [str(corpus)]


def test_a_pipeline_given_replace_data_rebuilds_a_store_built_from_another_data_root(corpus, tmp_path, monkeypatch):
    """The store's refusal of another data root tells to give --replace-data (a served run: replace_data to true),
    which `emotion run` takes and the pipeline hands to its extractions."""
    import os

    import pytest

    import flows.run as run
    from emotion.core.errors import StoreError
    from emotion.models.search import SearchParams
    from emotion.store.store import Store

    out = tmp_path / "store"
    store = Store(str(out))
    store.check_data_root(str(tmp_path / "other-root"))
    monkeypatch.setattr(run, "train_models", lambda *a, **k: {"models": []})  # the extraction is what is checked
    args = (str(corpus), str(out), "train=1-3,test=21", ("lr",), "seed", SearchParams(n_iter=1, cv_folds=2), "audio")
    with pytest.raises(StoreError, match="--replace-data to rebuild it") as err:
        run.run_pipeline(*args, workers=1)
    assert "replace_data to true" in err.value.served_message()
    r = run.run_pipeline(*args, workers=1, replace_data=True)
    assert r["extract"]["audio"]["processed"] == 120
    assert store.read_json(store.path("store.json"))["data_root"] == os.path.realpath(corpus)


def test_a_video_run_is_named_and_tagged_without_the_audio_recipe(tmp_path, monkeypatch):
    """`emotion run --modality video` (frame networks only) was named pipeline-video-extended-speakernorm-... and
    tagged features:extended, speaker-norm:yes, which its extraction inherited: a UI filter on speaker-norm:yes
    found runs of no audio model. A run that trains feature models keeps both."""
    import flows.run as run
    from tests.flows.test_train import _capture_tags

    got = _capture_tags(monkeypatch, run)
    monkeypatch.setattr(run, "_pipeline", lambda *_a, **_k: {})
    cases = {("video", ("cnn", "fer"), "extended"): ("pipeline-video-train=1,test=5-abc123", set()),
             ("all", ("lr", "cnn"), "extended"): ("pipeline-all-extended-speakernorm-train=1,test=5-abc123",
                                                  {"features:extended", "speaker-norm:yes"}),
             ("video", ("lr",), "landmarks"): ("pipeline-video-landmarks-speakernorm-train=1,test=5-abc123",
                                               {"features:landmarks", "speaker-norm:yes"}),
             ("all", ("fusion-late",), "seed"): ("pipeline-all-seed-train=1,test=5-abc123", {"features:seed"})}
    for (modality, models, features), (named, tags) in cases.items():
        params = {"modality": modality, "models": models, "features": features, "speaker_norm": True,
                  "split": "train=1,test=5"}
        monkeypatch.setattr(run, "current_run", lambda p=params: ("abc123", p))
        assert run.pipeline_run_name() == named
        run.run_pipeline.fn(str(tmp_path), str(tmp_path), "train=1,test=5", models, features, modality=modality,
                            speaker_norm=True)
        kinds = {t for t in got[-1] if t.split(":")[0] in ("features", "speaker-norm")}
        assert kinds == tags, (modality, models, got[-1])


def test_a_run_whose_only_video_clip_is_rejected_says_so_rather_than_that_there_is_none(corpus, tmp_path, monkeypatch):
    """A walkthrough: a truncated mp4 was rejected (its line said why), then the note said "no video clips under the
    data root", as if there were none."""
    import flows.run as run
    from emotion.models.search import SearchParams

    (corpus / "Actor_01" / "01-01-03-01-01-01-01.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    monkeypatch.setattr(run, "train_models", lambda *a, **k: {"models": []})  # what is skipped is what is checked
    r = run.run_pipeline(str(corpus), str(tmp_path / "store"), "train=1-3,test=21", ("lr", "cnn"), "seed",
                         SearchParams(n_iter=1, cv_folds=2), "all", workers=1)
    assert r["extract"]["video"]["rejected"] == 1
    assert "no usable video clips under the data root (1 rejected): video models skipped" in r["notes"]
