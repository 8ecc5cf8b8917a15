"""Models know where they came from: synth -> extract -> train marks the run synthetic, and predict and the report say
so beside every answer; the same clips without the synthetic marker train a run marked recorded, with no warning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emotion.core.provenance import MARKER, SYNTHETIC_WARNING
from flows.cli import main
from tests.flows.test_cli import run_cli

pytestmark = pytest.mark.slow
TRAIN = ["--split", "train=1-3,test=21", "--model", "lr", "--n-iter", "2", "--no-refine", "--jobs", "1"]


def test_a_model_trained_on_a_synthetic_corpus_says_so_and_a_recorded_one_does_not(tmp_path: Path, capsys):
    data, out = tmp_path / "data", tmp_path / "store"
    code, _, err = run_cli(capsys, "synth", str(data), "--actors", "1,2,3,21", "--repetitions", "1", "--duration", "0.6")
    assert code == 0, err
    assert json.loads((data / MARKER).read_text())["data_origin"] == "synthetic"
    code, ex, err = run_cli(capsys, "extract", str(data), "--out", str(out), "--modality", "audio", "--workers", "1",
                            "--json")
    assert code == 0 and ex["rejected"] == 0, err  # the marker is not a clip: neither read nor rejected
    assert json.loads((out / "store.json").read_text())["data_origin"] == "synthetic"

    code = main(["train", str(out), *TRAIN])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "trained on synthetic data, not meaningful for real recordings" in text  # the train summary says it
    # the table's row of lr (marked "* " when it is the selected model)
    run_dir = Path(next(line.split()[-1] for line in text.splitlines() if line.strip().lstrip("* ").startswith("lr ")))
    assert json.loads((run_dir / "run.json").read_text())["data_origin"] == "synthetic"
    assert "Training data: synthetic" in (run_dir / "model_card.md").read_text()
    split_dir = run_dir.parent.parent
    assert "trained on synthetic data" in (split_dir / "report.md").read_text()
    assert "trained on synthetic data" in (split_dir / "report.html").read_text()

    clip = str(sorted(data.rglob("*.wav"))[0])
    code, payload, err = run_cli(capsys, "predict", clip, "--store", str(out), "--json")
    assert code == 0, err
    assert payload[0]["data_origin"] == "synthetic" and payload[0]["origin_warning"] == SYNTHETIC_WARNING
    assert main(["predict", clip, "--store", str(out)]) == 0
    answer = capsys.readouterr().out.splitlines()[0]
    assert answer.startswith(f"{clip}: ") and SYNTHETIC_WARNING in answer  # beside the answer itself

    # the same clips as recordings (no marker), the store rebuilt from them: the retrained run is marked recorded
    recorded = tmp_path / "recorded"
    shutil.copytree(data, recorded, ignore=shutil.ignore_patterns(MARKER))
    code, _, err = run_cli(capsys, "extract", str(recorded), "--out", str(out), "--modality", "audio", "--workers",
                           "1", "--replace-data", "--json")
    assert code == 0, err
    assert json.loads((out / "store.json").read_text())["data_origin"] == "recorded"
    code, t, err = run_cli(capsys, "train", str(out), *TRAIN, "--force", "--json")
    assert code == 0, err
    assert json.loads((Path(t["models"][0]["run_dir"]) / "run.json").read_text())["data_origin"] == "recorded"
    code, payload, err = run_cli(capsys, "predict", clip, "--store", str(out), "--json")
    assert code == 0 and payload[0]["data_origin"] == "recorded" and payload[0]["origin_warning"] is None, err
    assert "trained on synthetic data" not in (split_dir / "report.html").read_text()
