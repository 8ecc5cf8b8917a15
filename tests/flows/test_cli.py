"""End-to-end runs of the ``emotion`` command on tiny synthetic corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion.audio.extended import ExtendedFeatureParams
from emotion.audio.seed import AudioFeatureParams
from emotion.models.persist import load_run
from emotion.store.store import Store
from flows.cli import main
from tests.conftest import write_tone

pytestmark = pytest.mark.slow
FAST = ["--n-iter", "2", "--workers", "2", "--jobs", "1"]
SPLIT = ["--split", "train=1-3,test=21"]


def run_cli(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    payload = json.loads(out) if "--json" in argv and code == 0 else {}
    return code, payload, err


def test_run_end_to_end_with_bad_files(corpus: Path, tmp_path: Path, capsys):
    (corpus / "Actor_01" / "03-01-05-01-01-01-01.flac").write_bytes(b"")
    (corpus / "Actor_02" / "03-01-05-01-01-01-02.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    out = tmp_path / "store"
    code, r, _ = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--features", "seed", "--json")
    assert code == 0
    assert r["recipe"]["name"] == "seed" and r["recipe"]["assumes"] is None  # the baseline: one flag away
    ex = r["extract"]
    assert (ex["processed"], ex["skipped"], ex["removed"], ex["rejected"]) == (118, 0, 0, 2)
    assert len(ex["workers"]) == 2  # both local workers did work
    rejects = Store(str(out)).read_rejects("audio").set_index("path")["reason"].to_dict()
    assert rejects == {"Actor_01/03-01-05-01-01-01-01.flac": "empty file (0 bytes)",
                       "Actor_02/03-01-05-01-01-01-02.wav": rejects["Actor_02/03-01-05-01-01-01-02.wav"]}
    assert rejects["Actor_02/03-01-05-01-01-01-02.wav"].startswith("cannot decode audio")

    models = {m["model"]: m for m in r["train"]["models"]}
    assert set(models) == {"rf", "svc", "xgb", "lr"}
    for name, m in models.items():
        run_dir = Path(m["run_dir"])
        assert run_dir.parent.parent.name == "train01-03_test21" and run_dir.parent.name == name
        files = {p.name for p in run_dir.iterdir()}
        assert {"metrics.json", "params.json", "run.json", "confusion_matrix.png", "predictions.parquet"} <= files
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert {"accuracy", "macro_f1", "uar", "n_train", "n_test", "train_actors", "test_actors", "per_class",
                "confusion_matrix"} <= set(metrics)
        assert metrics["n_test"] == 30 and metrics["n_train"] == 88 and metrics["test_actors"] == [21]
        info = json.loads((run_dir / "run.json").read_text())
        assert info["feature_hash"] and info["data_hash"] and json.loads((run_dir / "params.json").read_text())["best_params"]
        est, _ = load_run(Store(str(out)), str(run_dir))
        preds = pd.read_parquet(run_dir / "predictions.parquet")
        assert list(preds.columns[:3]) == ["path", "actor", "emotion"] and len(preds) == 30
    assert max(m["accuracy"] for m in models.values()) >= 0.8  # the synthetic signal is learnable

    # a rerun processes nothing and reuses the trained runs
    code, r2, _ = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--features", "seed", "--json")
    assert code == 0
    assert (r2["extract"]["processed"], r2["extract"]["skipped"], r2["extract"]["rejected"]) == (0, 118, 2)
    assert all(m["reused"] for m in r2["train"]["models"])

    # retraining from scratch, the search in 2 processes where the first run had 1, gives the same runs (fixed seeds;
    # --jobs is not in the version, so it must not change what a run holds): the same versions, and the same bytes
    # of what they store, the model file included (skops named arrays by their id in memory, and dated its entries:
    # never the same bytes twice), so run.json records the same SHA-256
    stored = ("predictions.parquet", "params.json", "metrics.json", "model_card.md", "confusion_matrix.png")

    def model_file(m: dict) -> tuple[dict, bytes]:
        record = json.loads((Path(m["run_dir"]) / "run.json").read_text())["model_file"]
        return record, (Path(m["run_dir"]) / record["file"]).read_bytes()

    before = {name: {f: (Path(m["run_dir"]) / f).read_bytes() for f in stored} for name, m in models.items()}
    models_before = {name: model_file(m) for name, m in models.items()}
    code, r3, _ = run_cli(capsys, "train", str(out), *SPLIT, "--n-iter", "2", "--jobs", "2", "--force", "--json")
    assert code == 0
    again = {m["model"]: m for m in r3["models"]}
    for name, m in models.items():
        assert again[name]["accuracy"] == m["accuracy"] and again[name]["cv_accuracy"] == m["cv_accuracy"]
        assert again[name]["version"] == m["version"] and again[name]["run_dir"] == m["run_dir"]
        for f in stored:
            assert (Path(m["run_dir"]) / f).read_bytes() == before[name][f], (name, f)
        assert model_file(m) == models_before[name], (name, models_before[name][0]["file"])


def test_strict_fails_on_rejects_after_writing_the_rest(corpus: Path, tmp_path: Path, capfd):
    (corpus / "Actor_01" / "03-01-05-01-01-01-01.flac").write_bytes(b"")
    out = tmp_path / "store"
    code, _, err = run_cli(capfd, "extract", str(corpus), "--out", str(out), "--modality", "audio", "--workers", "1", "--strict")
    assert code == 1 and "1 file(s) rejected and --strict is set" in err
    assert len(Store(str(out)).read_features("audio", AudioFeatureParams().key)) == 119  # the rest was written
    assert len(Store(str(out)).read_rejects("audio")) == 1
    # with --json, stdout says it failed as any failure does, beside the summary
    out2 = tmp_path / "store2"
    assert main(["extract", str(corpus), "--out", str(out2), "--modality", "audio", "--workers", "1", "--strict",
                 "--json"]) == 1
    got, err = capfd.readouterr()
    r = json.loads(got)
    assert r["ok"] is False and r["exit_code"] == 1 and r["error"] == "1 file(s) rejected and --strict is set"
    assert r["rejected"] == 1 and r["command"] == "extract" and "--strict is set" in err


def test_split_without_test_clips_fails_with_one_line(corpus: Path, tmp_path: Path, capfd):
    out = tmp_path / "store"
    assert run_cli(capfd, "extract", str(corpus), "--out", str(out), "--workers", "1")[0] == 0
    code, _, err = run_cli(capfd, "train", str(out), "--split", "train=1-3,test=22", "--model", "svc", "--n-iter", "1")
    assert code == 1
    # one line says it: not Prefect's lines about the task's failure, its state and the flow's before it
    lines = [line for line in err.strip().splitlines() if not line.startswith("flow run ")]
    assert len(lines) == 1 and lines[0].startswith("emotion: train failed: no clips of the test actors"), err


def test_run_checks_the_split_against_the_actors_of_the_data_before_extracting(corpus: Path, tmp_path: Path, capfd):
    """The default split on data without actors 21-24 failed only once every clip was extracted, naming no split to
    give; two train actors for 3 CV folds likewise (exit 2, and no --cv-folds named). Both now fail at once."""
    import shutil

    shutil.rmtree(corpus / "Actor_21")  # actors 1-3 only
    out = tmp_path / "store"
    code, _, err = run_cli(capfd, "run", str(corpus), "--out", str(out), "--modality", "audio")
    lines = [line for line in err.strip().splitlines() if not line.startswith("flow run ")]
    assert code == 1 and lines == [
        f"emotion: run failed: no clips of the test actors of train=01-20,test=21-24 under {corpus} (actors "
        "present: 01-03); give e.g. --split train=01-02,test=03"], err
    assert not (out / "features").exists()  # nothing was extracted
    code, _, err = run_cli(capfd, "run", str(corpus), "--out", str(out), "--modality", "audio",
                           "--split", "train=1-2,test=3")
    lines = [line for line in err.strip().splitlines() if not line.startswith("flow run ")]
    assert code == 2 and lines == [
        "emotion: error: grouped CV needs at least 3 training actors, got 2 (01-02): give --cv-folds 2, or a split "
        f"with more train actors (the clips under {corpus} have 2 of the train actors of train=01-02,test=03)"], err
    assert not (out / "features").exists()


def test_a_split_the_data_cannot_satisfy_stops_run_before_prefect_starts_and_creates_no_folder(
        corpus: Path, tmp_path: Path, capfd, monkeypatch):
    """The check needs only a listing of the data root; it ran inside the flow, after ~16 s of starting a temporary
    Prefect server, and left the empty --out folder the command had made."""
    import flows.cli.commands as commands

    def no_prefect(*_a, **_k):
        raise AssertionError("Prefect started before the split was checked")

    monkeypatch.setattr(commands, "flows_module", no_prefect)
    out = tmp_path / "new" / "store"
    code, _, err = run_cli(capfd, "run", str(corpus), "--out", str(out), "--modality", "audio",
                           "--split", "train=1-3,test=22")
    assert code == 1 and err.strip().splitlines() == [
        f"emotion: run failed: no clips of the test actors of train=01-03,test=22 under {corpus} (actors present: "
        "01-03,21); give e.g. --split train=01-03,test=21"], err
    assert not (tmp_path / "new").exists()


def test_a_failed_run_removes_the_empty_folders_it_created_and_keeps_any_other(corpus: Path, tmp_path: Path, capfd,
                                                                               monkeypatch):
    from types import SimpleNamespace

    import flows.cli.commands as commands
    from emotion.core.errors import EmotionError

    def fails(_data, out, *_a, **_k):
        if Path(out).name == "keep":  # a run that stored something before it failed
            Path(out, "part").write_text("written")
        raise EmotionError("the pipeline failed")

    monkeypatch.setattr(commands, "flows_module", lambda *_a, **_k: SimpleNamespace(
        run=SimpleNamespace(run_pipeline=fails)))
    argv = ("run", str(corpus), "--modality", "audio", *SPLIT)
    assert run_cli(capfd, *argv, "--out", str(tmp_path / "a" / "b" / "store"))[0] == 1
    assert not (tmp_path / "a").exists()  # made by the command, left empty: removed
    (tmp_path / "before").mkdir()
    assert run_cli(capfd, *argv, "--out", str(tmp_path / "before" / "store"))[0] == 1
    assert (tmp_path / "before").is_dir() and not (tmp_path / "before" / "store").exists()  # it existed: it stays
    (tmp_path / "mine").mkdir()
    assert run_cli(capfd, *argv, "--out", str(tmp_path / "mine"))[0] == 1
    assert (tmp_path / "mine").is_dir()  # the user's own empty folder
    assert run_cli(capfd, *argv, "--out", str(tmp_path / "new" / "keep"))[0] == 1
    assert (tmp_path / "new" / "keep" / "part").read_text() == "written"  # something stored: nothing removed


def test_a_run_interrupted_while_training_still_shows_what_its_extraction_did(corpus: Path, tmp_path: Path, capsys,
                                                                              monkeypatch):
    """Ctrl-C during the training: the extraction's work is stored, and its summary is printed before "interrupted"."""
    from flows import run as run_flow

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_flow, "train_models", interrupted)
    code = main(["run", str(corpus), "--out", str(tmp_path / "store"), *SPLIT, "--features", "seed", "--modality",
                 "audio", "--workers", "1"])
    stdout, err = capsys.readouterr()
    assert code == 130 and err.splitlines()[-1] == "emotion: interrupted"
    assert stdout.startswith("extract audio: 120 processed, 0 skipped, 0 removed, 0 rejected"), stdout


def test_a_run_whose_training_fails_still_shows_what_its_extraction_did(corpus: Path, tmp_path: Path, capsys):
    """Every clip of train actor 01 is unreadable: the names pass the check before extracting, the extraction rejects
    them, and the training cannot tune on the two train actors left. The rejects say why; they were not shown."""
    for f in (corpus / "Actor_01").iterdir():
        f.write_bytes(b"not audio")
    out = tmp_path / "store"
    argv = ["run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--features", "seed", "--model", "lr",
            "--modality", "audio"]
    code = main(argv)
    stdout, err = capsys.readouterr()
    assert code == 2  # the training's error, as before
    assert stdout.startswith("extract audio: 90 processed, 0 skipped, 0 removed, 30 rejected"), stdout
    lines = stdout.splitlines()
    rejected = [x for x in lines if x.startswith("  rejected ")]  # the first 20, then "... and 10 more"
    assert len(rejected) == 20 and all(x.startswith("  rejected Actor_01/") and "cannot decode audio" in x
                                       for x in rejected)
    assert err.splitlines()[-1] == ("emotion: error: grouped CV needs at least 3 training actors, got 2 (02-03): "
                                    "give --cv-folds 2, or a split with more train actors")  # the actors left named
    # --json: the failure as one object on stdout, with the extraction's summary as a successful run gives it
    code = main([*argv, "--json"])
    stdout, err = capsys.readouterr()
    failed = json.loads(stdout)
    assert code == 2 and (failed["ok"], failed["command"], failed["exit_code"]) == (False, "run", 2)
    assert failed["error"].startswith("grouped CV needs at least 3 training actors, got 2")
    ex = failed["extract"]
    assert (ex["processed"], ex["skipped"], ex["rejected"]) == (0, 90, 30)  # the rerun reused the stored features
    assert {r["path"].split("/")[0] for r in ex["rejects"]} == {"Actor_01"}
    assert err.splitlines()[-1].startswith("emotion: error: grouped CV needs")


@pytest.mark.parametrize("argv, message", [
    (["extract", "/no/such/folder", "--out", "/tmp/x"], "does not exist"),
    (["train", "/no/such/store"], "does not exist"),
    (["train", ".", "--split", "train=1-20"], "bad split"),
    (["train", ".", "--model", "knn"], "unknown model"),
    (["train", ".", "--model", ","], "--model ',' names no model"),
    (["train", ".", "--n-iter", "0"], "--n-iter"),
    (["train", ".", "--features", "nope"], "unknown feature set 'nope'"),
    (["evaluate", ".", "--loso", "--model", "knn"], "unknown model"),
    (["evaluate", ".", "--loso", "--params-from", "train=1-2,test=3"], "--params-from needs --fixed-params"),
    (["predict", "x.wav", "--store", ".", "--split", "foo"], "bad split 'foo'"),
    (["predict", "x.wav", "--store", ".", "--split", "train=1-20"], "bad split 'train=1-20'"),
    (["predict", "x.wav", "--model", "lr"], "--model takes a run folder or the model file inside it"),
])
def test_bad_usage_exits_2_with_one_line(argv, message, capsys):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err


def test_a_misspelt_option_is_named_under_its_commands_usage(capsys):
    """Not under the top level's `usage: emotion [-h] COMMAND ...`, which lists no option of the command."""
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", "store", "--models", "lr"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: emotion train ")
    assert err.strip().splitlines()[-1] == "emotion train: error: unrecognized arguments: --out --models lr"


@pytest.mark.parametrize("address", ["foo", "tcp://host", "tcp://h:abc", "http://h:8786"])
@pytest.mark.parametrize("command", ["extract", "run"])
def test_a_malformed_dask_address_is_refused_before_anything_runs(command, address, tmp_path: Path, capsys,
                                                                  monkeypatch):
    """Not Prefect's 139-line traceback ending in Dask's ValueError, exit 1; nor exit 0 when every clip is skipped
    and the cluster is never asked for: one line, exit 2, whether it came from the option or the environment."""
    data, out = tmp_path / "data", tmp_path / "store"
    data.mkdir()
    (data / "03-01-01-01-01-01-01.wav").write_bytes(b"")
    code, _, err = run_cli(capsys, command, str(data), "--out", str(out), "--dask-address", address)
    assert code == 2 and err.strip().startswith(f"emotion: error: --dask-address {address!r}: "), err
    assert "expected tcp://HOST:PORT" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("EMOTION_DASK_ADDRESS", address)
    code, _, err = run_cli(capsys, command, str(data), "--out", str(out))
    assert code == 2 and err.strip().startswith(f"emotion: error: EMOTION_DASK_ADDRESS {address!r}: "), err
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["extract", ".", "--features", "nope"], ["extract", ".", "--augment"],
    ["run", ".", "--split", "train=1-20"], ["run", ".", "--features", "seed", "--augment"],
])
def test_bad_usage_leaves_no_output_folder_behind(argv, tmp_path: Path, capsys):
    """A command line refused with exit 2 creates nothing: no empty store (with a lock file) under --out."""
    data, out = tmp_path / "data", tmp_path / "new-store"
    data.mkdir()
    (data / "03-01-01-01-01-01-01.wav").write_bytes(b"")
    argv = [str(data) if a == "." else a for a in argv]
    code, _, err = run_cli(capsys, *argv, "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_data_root_without_any_clip_is_named_before_anything_is_created(tmp_path: Path, capsys):
    """extract (and run) on a folder with no .wav/.flac/.mp4/.zip under it: one line, exit 2, no store created."""
    data = tmp_path / "data"
    (data / "Actor_01").mkdir(parents=True)
    (data / "Actor_01" / "notes.txt").write_text("not a clip")
    (data / "Actor_01" / "03-01-01-01-01-01-01.mp3").write_bytes(b"ID3")
    for command in ("extract", "run"):
        code, _, err = run_cli(capsys, command, str(data), "--out", str(tmp_path / "store"))
        assert code == 2 and err.strip() == (f"emotion: error: data root {str(data)!r} holds no .wav, .flac or .mp4 "
                                             "clip (in folders or zip archives): nothing to extract (a store is "
                                             "never emptied by an empty data root; to start over, remove the "
                                             "store)"), err
    assert not (tmp_path / "store").exists()
    (data / "Actor_01" / "deeper").mkdir()
    (data / "Actor_01" / "deeper" / "link").symlink_to(data)  # a link cycle is walked once, not forever
    assert run_cli(capsys, "extract", str(data), "--out", str(tmp_path / "store"))[0] == 2
    (data / "Actor_01" / "deeper" / "03-01-01-01-01-01-01.wav").write_bytes(b"")  # a clip (even a bad one): go on
    code, _, err = run_cli(capsys, "extract", str(data), "--out", "/proc/emotion-store")
    assert code == 2 and "cannot create the output folder" in err and len(err.strip().splitlines()) == 1


def test_synth_and_extract_print_readable_summaries(tmp_path: Path, capsys):
    code, _, _ = run_cli(capsys, "synth", str(tmp_path / "d"), "--actors", "1,2", "--repetitions", "1", "--duration", "0.6")
    assert code == 0
    code, synth, _ = run_cli(capsys, "synth", str(tmp_path / "v"), "--actors", "3", "--repetitions", "1", "--video", "--json")
    assert code == 0 and synth["clips"] == 30 and synth["videos"] == 60
    assert len(list((tmp_path / "v" / "Actor_03").glob("0[12]-*.mp4"))) == 60
    assert main(["extract", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--workers", "1", "--chunk-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "extract audio: 60 processed, 0 skipped, 0 removed, 0 rejected" in out
    assert "merged 20 small Parquet parts: 1 part(s) stored" in out  # 20 chunks of 3 clips, more than 16 parts
    assert "extract video: 0 processed" in out


def test_rerun_after_change_add_delete_processes_two_removes_one(corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "store"
    code, first, _ = run_cli(capsys, "extract", str(corpus), "--out", str(out), "--workers", "1", "--json")
    assert code == 0 and first["processed"] == 120
    fkey = first["modalities"]["audio"]["feature_set"]
    store = Store(str(out))
    before = store.read_features("audio", fkey).set_index("path")
    changed = corpus / "Actor_02" / "03-01-03-01-01-01-02.wav"
    write_tone(changed, seconds=1.1, amp=0.25)  # new content (a copy of another clip would be a duplicate recording)
    (corpus / "Actor_03" / "03-01-06-02-02-01-03.flac").unlink()
    added = corpus / "Actor_03" / "03-01-06-02-02-02-03.flac"
    write_tone(added, seconds=1.3, amp=0.2)
    code, second, _ = run_cli(capsys, "extract", str(corpus), "--out", str(out), "--workers", "1", "--json")
    assert code == 0
    assert (second["processed"], second["removed"], second["skipped"], second["rejected"]) == (2, 1, 118, 0)
    after = Store(str(out)).read_features("audio", fkey).set_index("path")
    assert len(after) == 120 and "Actor_03/03-01-06-02-02-01-03.flac" not in after.index
    key = "Actor_02/03-01-03-01-01-01-02.wav"
    assert after.loc[key, "mfcc01_mean"] != before.loc[key, "mfcc01_mean"]
    untouched = "Actor_01/03-01-01-01-01-01-01.flac"
    assert after.loc[untouched, "mfcc01_mean"] == before.loc[untouched, "mfcc01_mean"]
    parts = store.read_parts(store.list_parts(store.features_dir("audio", fkey)))
    assert len(parts) == 120 and parts["path"].is_unique  # stale rows compacted away, not just hidden
    # --full recomputes every clip and leaves exactly one row per clip
    code, full, _ = run_cli(capsys, "extract", str(corpus), "--out", str(out), "--workers", "1", "--full", "--json")
    assert (full["processed"], full["skipped"]) == (120, 0)
    parts = store.read_parts(store.list_parts(store.features_dir("audio", fkey)))
    assert len(parts) == 120 and parts["path"].is_unique


def test_a_prefect_server_that_is_down_is_reported_with_the_way_out(tiny_corpus: Path, tmp_path: Path, capsys, monkeypatch):
    from tests.services import free_port

    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    code, _, err = run_cli(capsys, "extract", str(tiny_corpus), "--out", str(tmp_path / "o"))
    assert code == 1
    [line] = err.strip().splitlines()
    assert "is not reachable" in line and "emotion server" in line and "unset PREFECT_API_URL" in line
    assert not (tmp_path / "o" / "features").exists()  # nothing was started
    # deploy needs the server that schedules its runs: a temporary one is no way out (a walkthrough: it was offered,
    # and deploy then refused a PREFECT_API_URL left unset)
    spec = tmp_path / "d.yaml"
    spec.write_text(f"deployments:\n  - {{name: a, flow: extract, cron: '0 2 * * *', parameters: {{data: {tiny_corpus}, "
                    f"out: {tmp_path / 'o'}}}}}\n")
    code, _, err = run_cli(capsys, "deploy", "--file", str(spec), "--register-only")
    [line] = err.strip().splitlines()
    assert code == 1 and "is not reachable" in line and "start it with `emotion server`" in line
    assert "unset PREFECT_API_URL" not in line


def test_a_prefect_api_url_without_api_is_not_called_a_server_that_is_down(tiny_corpus: Path, tmp_path: Path, capsys,
                                                                          monkeypatch):
    # http://HOST:PORT instead of http://HOST:PORT/api: the server answers 404, and was reported as not reachable
    import http.server
    import threading

    class NotPrefect(http.server.BaseHTTPRequestHandler):  # 501 to every GET, and quiet
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), NotPrefect)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{httpd.server_port}")
        code, _, err = run_cli(capsys, "extract", str(tiny_corpus), "--out", str(tmp_path / "o"))
    finally:
        httpd.shutdown()
    assert code == 1
    [line] = err.strip().splitlines()
    assert "answers but is not a Prefect API" in line and "HTTP 501" in line and "under /api" in line
    assert "not reachable" not in line


def test_a_pipeline_step_prints_the_ui_page_of_its_own_flow_run_not_the_pipelines(monkeypatch):
    # each step's flow run is called inside a task run of the pipeline; Prefect announces it with the step's
    # name but the pipeline's id, so every step's line pointed at the pipeline's page
    from prefect import flow, task
    from prefect.runtime import flow_run

    from flows.cli import commands

    printed: list[tuple[str, str]] = []
    monkeypatch.setattr(commands, "flow_run_line", lambda name, run_id: printed.append((name, run_id)) or "")
    commands.flows_module("extract")  # the console filters, as the commands install them

    @flow(flow_run_name="step-run")
    def step_flow() -> str:
        return flow_run.id

    @task(name="step")
    def step() -> str:
        return step_flow()

    @flow(flow_run_name="pipeline-run")
    def pipeline() -> tuple[str, str]:
        return flow_run.id, step()

    pipeline_id, step_id = pipeline()
    assert pipeline_id != step_id
    assert set(printed) == {("pipeline-run", pipeline_id), ("step-run", step_id)}


def test_extended_features_speaker_norm_neural_models_and_loso(corpus: Path, tmp_path: Path, capsys):
    out = tmp_path / "store"
    code, r, _ = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--features", "extended",
                         "--no-augment", "--speaker-norm", "--model", "lr,mlp", "--json")
    assert code == 0
    assert r["extract"]["modalities"]["audio"]["feature_set"].startswith("extended-")
    assert r["train"]["features"] == "extended" and r["train"]["speaker_norm"] is True
    for m in r["train"]["models"]:
        run_dir = Path(m["run_dir"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["features"] == "extended" and metrics["speaker_norm"] is True
        assert json.loads((run_dir / "params.json").read_text())["speaker_norm"] is True
        assert json.loads((run_dir / "run.json").read_text())["speaker_norm"] is True
        assert (run_dir / "model_card.md").read_text().count("speaker normalisation: on") == 1
        assert (run_dir / "normalization.json").is_file()
        est, info = load_run(Store(str(out)), str(run_dir))
        assert info["model_file"]["format"] == ("keras" if m["model"] == "mlp" else "skops")
    assert max(m["accuracy"] for m in r["train"]["models"]) >= 0.8

    # predict computes the extended set and, for one file (no group of the speaker's clips), normalises it with
    # the pooled training statistics saved beside the run, and says so
    from emotion.core.ids import EMOTION_LABELS

    lr_dir = next(m["run_dir"] for m in r["train"]["models"] if m["model"] == "lr")
    code, p, err = run_cli(capsys, "predict", str(sorted(corpus.rglob("*.wav"))[0]), "--model", lr_dir, "--json")
    assert code == 0, err
    assert p[0]["emotion"] in EMOTION_LABELS and p[0]["model"] == lr_dir
    assert any("pooled training statistics" in n for n in p[0]["notes"])

    # the same model on seed without normalisation is a different run; the report shows both side by side
    code, t, _ = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--features", "seed", "--model",
                         "lr", "--json")
    assert code == 0 and t["train"]["models"][0]["version"] != next(
        m["version"] for m in r["train"]["models"] if m["model"] == "lr")
    summary = json.loads((out / "runs" / "train01-03_test21" / "summary.json").read_text())
    assert {(x["features"], x["model"], x["speaker_norm"]) for x in summary["all"]} == {
        ("extended", "lr", True), ("extended", "mlp", True), ("seed", "lr", False)}
    ext_key, seed_key = ExtendedFeatureParams().key, AudioFeatureParams().key
    report = (out / "runs" / "train01-03_test21" / "report.md").read_text()
    assert f"| {ext_key} | yes | mlp |" in report and f"| {seed_key} | no | lr |" in report

    # leave-one-actor-out over the training actors 01-03, tuned in every fold, then with the stored run's parameters
    code, e, _ = run_cli(capsys, "evaluate", str(out), "--loso", *SPLIT, "--features", "extended", "--speaker-norm",
                         "--model", "lr", "--n-iter", "1", "--cv-folds", "2", "--jobs", "1", "--json")
    assert code == 0 and e["mode"] == "nested"
    lr = e["models"][0]
    assert set(lr["per_actor"]) == {"01", "02", "03"} and lr["n_clips"] == 90
    assert lr["mean"] == pytest.approx(np.mean(list(lr["per_actor"].values())))
    assert json.loads(Path(lr["path"]).read_text())["speaker_norm"] is True
    code, _, err = run_cli(capsys, "evaluate", str(out), "--loso", *SPLIT, "--features", "extended", "--speaker-norm",
                           "--model", "mlp", "--fixed-params", "--jobs", "1")
    assert code == 0, err
    loso_report = (out / "runs" / "train01-03_test21" / "loso" / "report.md").read_text()
    assert f"| {ext_key} | yes | lr | nested |" in loso_report and f"| {ext_key} | yes | mlp | fixed |" in loso_report
    assert "[loso/report.md](loso/report.md)" in (out / "runs" / "train01-03_test21" / "report.md").read_text()
    code, _, err = run_cli(capsys, "evaluate", str(out), "--loso", *SPLIT, "--model", "svc", "--fixed-params")
    assert code == 1 and "no stored svc run with features seed" in err


def test_train_writes_the_report_and_predict_reads_new_files(corpus: Path, tmp_path: Path, capsys):
    from emotion.core.ids import EMOTION_LABELS, parse_id
    from emotion.video.synth import VideoSynthParams, write_clip

    out = tmp_path / "store"
    code, r, _ = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, "--features", "seed", "--model", "svc",
                         "--n-iter", "2", "--no-refine", "--workers", "1", "--jobs", "1", "--json")
    assert code == 0
    report = out / "runs" / "train01-03_test21" / "report.md"
    assert r["train"]["report"] == str(report)
    assert r["train"]["split_used"] == r["train"]["split"] == "train=01-03,test=21"  # the data has every actor
    text = report.read_text()
    run_rel = Path(r["train"]["models"][0]["run_dir"]).relative_to(report.parent).as_posix()
    assert f"| audio | **svc** (selected) | seed | {r['train']['models'][0]['accuracy']:.3f} |" in text
    assert r["train"]["models"][0]["selected"] is True and r["train"]["selected_earlier"] == []
    assert f"]({run_rel}/confusion_matrix.png)" in text and "## Per-emotion recall" in text

    clips = tmp_path / "new"
    clips.mkdir()
    wav = clips / "interview.wav"  # not a RAVDESS name
    wav.write_bytes(sorted(corpus.rglob("*.wav"))[0].read_bytes())
    flac = sorted(corpus.rglob("*.flac"))[0]
    for name in ("01-01-03-01-01-01-21.mp4", "02-01-03-01-01-01-21.mp4"):
        write_clip(clips / name, parse_id(name), VideoSynthParams(duration=1.4))
    files = [str(wav), str(flac), str(clips / "01-01-03-01-01-01-21.mp4"), str(clips / "02-01-03-01-01-01-21.mp4")]
    code, payload, err = run_cli(capsys, "predict", *files, "--store", str(out), "--json")
    assert code == 0, err
    assert [p["file"] for p in payload] == files
    for p in payload[:3]:
        assert set(p) >= {"file", "emotion", "probabilities", "model", "modalities_used", "notes", "timeline"}
        assert list(p["probabilities"]) == list(EMOTION_LABELS) and abs(sum(p["probabilities"].values()) - 1) < 1e-6
        assert p["emotion"] in EMOTION_LABELS and p["model"] == r["train"]["models"][0]["run_dir"]
    assert payload[0]["label"] is None and payload[2]["label"] == "happy"
    # a video-only clip and a store without a face model: the pretrained FER2013 model reads the face, and says so
    assert payload[3]["modalities_used"] == ["video"] and payload[3]["model"].startswith("zero-shot FER2013")
    assert any(n.startswith("audio absent") for n in payload[3]["notes"])
    assert any("zero-shot" in n for n in payload[3]["notes"]) and payload[3]["probabilities"]["calm"] == 0

    # readable output, and a missing file fails the command after the others are printed
    code = main(["predict", str(flac), str(tmp_path / "gone.wav"), str(clips / "02-01-03-01-01-01-21.mp4"),
                 "--store", str(out)])
    text_out, err = capsys.readouterr()
    assert code == 1 and "1 of 3 file(s) could not be predicted" in err
    assert f"{flac}: " in text_out and "model: " in text_out
    assert f"{tmp_path / 'gone.wav'}: error: file not found" in text_out
    assert "audio absent: the audio track is silent" in text_out

    # a tampered model is refused with one line, exit 1
    run_dir = Path(r["train"]["models"][0]["run_dir"])
    model = next(run_dir.glob("model.*"))
    model.write_bytes(model.read_bytes() + b" ")
    code, _, err = run_cli(capsys, "predict", str(flac), "--model", str(run_dir))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "refusing to load a modified model" in err
    code, _, err = run_cli(capsys, "predict", str(flac))
    assert code == 2 and "--store" in err
    assert main(["predict", str(flac.parent)]) == 1  # a folder: named as one, not "give --store"
    out = capsys.readouterr().out
    assert "a folder, not a file" in out and f"(e.g. {flac.parent}/*.flac)" in out


def test_logmel_spectrograms_train_the_spectrogram_cnn_and_predict_new_files(corpus: Path, tmp_path: Path, capsys,
                                                                             monkeypatch):
    import dataclasses

    from emotion.audio.logmel import LogMelParams
    from emotion.core.ids import EMOTION_LABELS
    from emotion.models.catalog import MODELS

    # one quick candidate: the path through extraction, training, the run folder and predict is what is tested here
    quick = dataclasses.replace(MODELS["melcnn"], space={"filters": [(8, 16)], "dense": [16], "epochs": [12],
                                                         "learning_rate": [3e-3]})
    monkeypatch.setitem(MODELS, "melcnn", quick)
    out = tmp_path / "store"
    code, r, _ = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--features", "logmel",
                         "--modality", "audio", "--json")
    assert code == 0
    assert r["extract"]["modalities"]["audio"]["feature_set"] == LogMelParams().key
    [m] = r["train"]["models"]  # the spectrogram CNN is the default model of the spectrogram set
    assert m["model"] == "melcnn" and m["n_test"] == 30
    run_dir = Path(m["run_dir"])
    info = json.loads((run_dir / "run.json").read_text())
    assert info["model_file"]["format"] == "keras" and info["model_file"]["meta"]["kind"] == "melcnn"
    assert json.loads((run_dir / "metrics.json").read_text())["features"] == "logmel"
    stored = Store(str(out)).read_features("audio", LogMelParams().key)
    assert len(stored) == 120 and "logmel_b40_t059" in stored.columns

    wav = str(sorted(corpus.rglob("*.wav"))[0])
    code, p, err = run_cli(capsys, "predict", wav, "--model", str(run_dir), "--json")
    assert code == 0, err
    assert p[0]["emotion"] in EMOTION_LABELS and set(p[0]["probabilities"]) == set(EMOTION_LABELS)

    code, _, err = run_cli(capsys, "train", str(out), *SPLIT, "--model", "melcnn")
    assert code == 2 and "model 'melcnn' reads the logmel feature set, not 'seed'; add --features logmel" in err


def test_the_temporary_prefect_server_gets_two_minutes_to_start():
    """On 2 busy cores the ephemeral server took longer than Prefect's 20 s default, and the command died."""
    import subprocess
    import sys

    code = "import flows.cli; from prefect.settings import get_current_settings as s; " \
           "print(s().server.ephemeral.startup_timeout_seconds)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "120"


def test_speed_augmentation_trains_on_copies_and_averages_over_them(corpus: Path, tmp_path: Path, capsys):
    """`run`'s default recipe: extended features, speed copies and speaker normalisation."""
    out = tmp_path / "store"
    code, r, err = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, *FAST, "--model", "lr", "--json")
    assert code == 0, err
    assert r["recipe"]["name"] == "extended+augment+speaker-norm"
    assert r["recipe"]["augment"] == [0.9, 1.1] and r["recipe"]["speaker_norm"] is True
    assert "each test speaker's clips are normalised together" in r["recipe"]["assumes"]
    assert 0 <= r["train"]["models"][0]["accuracy_single_clip"] <= 1  # the accuracy one clip at a time
    params = ExtendedFeatureParams(speeds=(0.9, 1.1))
    assert r["extract"]["modalities"]["audio"]["feature_set"] == params.key  # its own set beside plain extended
    stored = Store(str(out)).read_features("audio", params.key)
    assert {"sp090__f0_mean", "sp110__f0_mean", "f0_mean"} <= set(stored.columns)
    [m] = r["train"]["models"]
    run_dir = Path(m["run_dir"])
    assert json.loads((run_dir / "run.json").read_text())["feature_params"]["speeds"] == [0.9, 1.1]
    aug = json.loads((run_dir / "params.json").read_text())["augmentation"]
    assert aug["speeds"] == [0.9, 1.1] and "average" in aug["how"]
    assert m["accuracy"] >= 0.8 and m["n_train"] == 90  # clips, not copies
    assert len(json.loads((run_dir / "normalization.json").read_text())["fallback"]["mean"]) == 3 * len(
        params.feature_names())  # each copy has its own pooled statistics
    # train names its recipe too, and prints the single-clip accuracy beside what speaker normalisation assumes
    train = ("train", str(out), *SPLIT, "--features", "extended", "--augment", "--speaker-norm", "--model", "lr",
             "--n-iter", "2", "--jobs", "1")
    code, t, err = run_cli(capsys, *train, "--json")
    assert code == 0, err
    assert t["recipe"]["name"] == "extended+augment+speaker-norm" and t["recipe"]["assumes"] == r["recipe"]["assumes"]
    assert t["models"][0]["reused"] and t["models"][0]["selected"]
    assert main(list(train)) == 0
    single = r["train"]["models"][0]["accuracy_single_clip"]
    assert f"one clip at a time: lr {single:.3f}" in capsys.readouterr().out

    # predict computes the copies of a new file and averages over them; a group of one speaker's clips too
    wavs = sorted(corpus.glob("Actor_21/*.*"))[:8]
    code, p, err = run_cli(capsys, "predict", *map(str, wavs), "--model", str(run_dir), "--same-speaker", "--json")
    assert code == 0, err
    assert len(p) == 8 and all(abs(sum(x["probabilities"].values()) - 1) < 1e-6 for x in p)
    assert sum(x["emotion"] == x["label"] for x in p) >= 6
    assert all(any("statistics of the 8 given clips" in n for n in x["notes"]) for x in p)

    code, e, err = run_cli(capsys, "evaluate", str(out), "--loso", *SPLIT, "--features", "extended", "--augment",
                           "--speaker-norm", "--model", "lr", "--fixed-params", "--jobs", "1", "--json")
    assert code == 0, err
    assert e["models"][0]["augmented_copies"] == 2 and e["models"][0]["n_clips"] == 90
    split_dir = out / "runs" / "train01-03_test21"
    assert "| audio | **lr** (selected) | extended + copies at 0.9x, 1.1x | yes |" in (split_dir / "report.md").read_text()
    assert f"| {params.key} + copies at 0.9x, 1.1x | yes | lr | fixed |" in (split_dir / "loso" / "report.md").read_text()
    # beside plain extended's; named by the hash of the run the hyper-parameters come from
    assert (split_dir / "loso" / f"{params.key}-speakernorm" / f"lr-fixed-{e['models'][0]['settings_hash']}.json").is_file()

    code, _, err = run_cli(capsys, "run", str(corpus), "--out", str(out), *SPLIT, "--features", "seed", "--augment",
                           "--model", "lr")
    assert code == 2
    assert err.strip() == "emotion: error: --augment needs --features extended (the seed set has no augmented copies)"
    code, _, err = run_cli(capsys, "train", str(out), *SPLIT, "--features", "extended", "--augment", "1.0")
    assert code == 2 and "augmentation speeds must be distinct factors" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["synth", "X", "--duration", "0"], ["server", "--port", "99999"], ["synth", "X", "--actors", "30-31"],
    ["extract", "X", "--out", "Y", "--chunk-size", "-3"], ["train", "X", "--jobs", "0"],
    ["extract", ".", "--out", "memory://store"],
])
def test_bad_numbers_and_stores_that_keep_nothing_are_one_line_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emotion: error:") and len(err.splitlines()) == 1, err


def test_run_defaults_to_the_strongest_recipe_and_keeps_the_baseline_one_flag_away(capsys, monkeypatch):
    from flows.cli.parser import build_parser, run_recipe
    from flows.cli.render import print_run_recipe
    from flows.run import recipe

    def parsed(*argv):
        a = run_recipe(build_parser().parse_args(["run", "DATA", "--out", "OUT", *argv]))
        return a.features, a.augment, a.speaker_norm

    assert parsed() == ("extended", (0.9, 1.1), True)
    assert parsed("--features", "seed") == ("seed", None, False)
    assert parsed("--no-speaker-norm") == ("extended", (0.9, 1.1), False)
    assert parsed("--no-augment") == ("extended", None, True)
    assert parsed("--features", "egemaps", "--speaker-norm") == ("egemaps", None, True)
    demo = build_parser().parse_args(["demo"])  # the demo keeps its own settings
    assert (demo.features, demo.augment, demo.speaker_norm) == ("seed", None, False)

    from emotion.audio.extended import ExtendedFeatureParams

    rec = recipe(ExtendedFeatureParams(speeds=(0.9, 1.1)), True)
    model = {"model": "lr", "modality": "audio", "accuracy": 0.8, "macro_f1": 0.8, "uar": 0.8, "cv_accuracy": 0.7,
             "cv_std": 0.1, "n_train": 960, "n_test": 240, "run_dir": "RUN", "accuracy_single_clip": 0.55}
    r = {"extract": {"modalities": {}}, "notes": [], "recipe": rec,
         "train": {"split": "S", "features": "extended", "speaker_norm": True, "summary": "X", "models": [model]}}
    monkeypatch.setattr("flows.cli.render.print_extract", lambda e: None)  # the extract lines are tested elsewhere
    print_run_recipe(r)
    text = capsys.readouterr().out
    assert "recipe:  extended features + augmentation (0.9x, 1.1x speed copies) + speaker normalisation" in text
    assert "accuracy assumes each test speaker's clips are normalised together" in text
    assert "accuracy one clip at a time: lr 0.550" in text
    from emotion.audio.seed import AudioFeatureParams

    assert recipe(AudioFeatureParams(), False)["description"] == "seed features (the 2018 baseline)"



def test_predict_json_with_unreadable_files_is_a_failure_object_keeping_the_predictions(tmp_path: Path, capsys):
    """Exit 1 as before, and with --json the failure shape of every other command (ok, command, error, exit_code),
    the per-file list as on success under ``predictions`` and which files failed and why under ``failed``."""
    import posixpath

    from emotion.core.ids import EMOTION_LABELS
    from emotion.core.splits import ActorSplit
    from emotion.models.catalog import SearchParams, model_spec
    from emotion.training.audio import split_data, train_and_evaluate
    from tests.conftest import speaker_table

    split, fp = ActorSplit.parse("train=1-4,test=5"), AudioFeatureParams()
    data = split_data(speaker_table(tuple(fp.column_names())), fp.column_names(), split, fp.hash())
    res = train_and_evaluate(model_spec("lr"), data, split, SearchParams(n_iter=1, refine=False), fp.to_dict(),
                             fp.hash())
    store = Store(str(tmp_path / "store"))
    run_dir = store.run_dir(split.id, "lr", res.version)
    for name, blob in res.files().items():
        store.write_bytes(posixpath.join(run_dir, name), blob)
    wav, gone = str(write_tone(tmp_path / "a.wav", seconds=2.0)), str(tmp_path / "gone.wav")
    bad = tmp_path / "b.flac"
    bad.write_bytes(b"not audio at all" * 100)

    code = main(["predict", wav, gone, str(bad), "--model", run_dir, "--json"])
    out, err = capsys.readouterr()
    assert code == 1 and "2 of 3 file(s) could not be predicted" in err
    p = json.loads(out)
    assert (p["ok"], p["command"], p["exit_code"]) == (False, "predict", 1)
    assert p["error"] == "2 of 3 file(s) could not be predicted"
    assert [x["file"] for x in p["predictions"]] == [wav, gone, str(bad)]  # one object per file, as on success
    assert p["predictions"][0]["emotion"] in EMOTION_LABELS and p["predictions"][0]["model"] == run_dir
    assert [f["file"] for f in p["failed"]] == [gone, str(bad)]
    assert p["failed"][0]["error"] == "file not found" and p["failed"][1]["error"]

    code = main(["predict", wav, "--model", run_dir, "--json"])  # success: the list, as before
    out, _ = capsys.readouterr()
    assert code == 0 and [x["file"] for x in json.loads(out)] == [wav]


def test_run_hands_replace_data_to_the_pipeline(tmp_path: Path, capsys, monkeypatch):
    """`emotion run --replace-data`, which the store's refusal of another data root tells to give, reaches the
    pipeline (it was taken and dropped: the run was refused the same way again)."""
    from emotion.core.errors import StoreError

    data = tmp_path / "data"
    data.mkdir()
    for actor in (1, 2, 3, 21):  # the default split's both sides, and train actors for its 3 CV folds: the command's
        (data / f"03-01-01-01-01-01-{actor:02d}.wav").write_bytes(b"")  # check of the split passes
    given: list[dict] = []

    def pipeline(*args, **kwargs):
        given.append(kwargs)
        raise StoreError("stopped here")

    monkeypatch.setattr("flows.run.run_pipeline", pipeline)
    for flag, replace in (["--replace-data"], True), ([], False):
        code, _, err = run_cli(capsys, "run", str(data), "--out", str(tmp_path / "store"), "--features", "seed",
                               "--modality", "audio", *flag)
        assert code == 1 and "stopped here" in err, err
        assert given.pop()["replace_data"] is replace


def test_predict_without_a_store_reads_the_mp4_clips_and_tells_an_audio_file_what_it_needs(tmp_path: Path, capsys):
    """A review: one .wav among mp4 clips, with no --store, refused the whole command with a line naming no file."""
    from tests.conftest import real_video_files

    clip = str(real_video_files()[0])
    wav = str(write_tone(tmp_path / "03-01-01-01-01-01-01.wav"))
    code = main(["predict", wav, clip, "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 1 and [f["file"] for f in payload["failed"]] == [wav]
    assert payload["failed"][0]["error"].startswith("needs a trained audio model: give --store OUT")
    assert payload["predictions"][1]["emotion"] and payload["predictions"][1]["model"].startswith("zero-shot FER2013")
    code, _, err = run_cli(capsys, "predict", wav)  # nothing it could read: the usage error, as before
    assert code == 2 and "give --store OUT" in err
