"""emotion.training.current: whether a stored run was trained on the data its store holds now."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from emotion.audio.seed import AudioFeatureParams
from emotion.core.ids import parse_id
from emotion.core.splits import ActorSplit
from emotion.store.catalog import RunRecord
from emotion.store.store import Store
from emotion.training.current import current_data_hash, trained_on_older_data
from tests.emotion.video.test_frameset import PARAMS as FRAMES
from tests.emotion.video.test_frameset import _rows, _write

SPLIT = ActorSplit.parse("train=1,test=21")
SEED = AudioFeatureParams()


def _audio(store: Store, stems: list[str], tag: str = "") -> None:
    cols = SEED.column_names()
    rows = [{"path": f"Actor_{parse_id(s).actor:02d}/{s}.wav", "content_hash": f"h{s}{tag}", **parse_id(s).labels(),
             **dict(zip(cols, np.random.default_rng(i).normal(size=len(cols)), strict=True))}
            for i, s in enumerate(stems)]
    store.write_table(f"{store.dataset_dir('features/audio', SEED.key)}/{Store.new_part_name()}",
                      pa.Table.from_pylist(rows))


def test_an_audio_run_is_on_older_data_once_a_clip_of_its_split_changes(tmp_path):
    store = Store(str(tmp_path / "store"))
    _audio(store, ["03-01-03-01-01-01-01", "03-01-04-01-01-01-01", "03-01-03-01-01-01-21"])
    now = current_data_hash(store, RunRecord("lr", "v", feature_params=SEED.to_dict(), feature_hash=SEED.hash()), SPLIT)
    run = RunRecord("lr", "v", feature_params=SEED.to_dict(), feature_hash=SEED.hash(), data_hash=now)
    assert now is not None and not trained_on_older_data(store, run, SPLIT)
    _audio(store, ["03-01-05-01-01-01-02"])  # an actor outside the split: its data is the same
    assert not trained_on_older_data(store, run, SPLIT)
    _audio(store, ["03-01-03-01-01-01-21"], tag="-edited")  # a test clip's contents changed
    assert trained_on_older_data(store, run, SPLIT)


def test_a_frame_run_is_on_older_data_once_a_clip_is_added(tmp_path):
    store = Store(str(tmp_path / "store"))
    _write(store, _rows("01-01-03-01-01-01-01", 2, 10) + _rows("01-01-04-01-01-01-21", 2, 20))
    rec = RunRecord("cnn", "v", modality="video", frame_params=FRAMES.to_dict())
    run = RunRecord("cnn", "v", modality="video", frame_params=FRAMES.to_dict(),
                    data_hash=current_data_hash(store, rec, SPLIT))
    assert run.data_hash is not None and not trained_on_older_data(store, run, SPLIT)
    _write(store, _rows("02-01-03-01-01-01-01", 2, 10))  # its 01's twin: the face models never read it
    assert not trained_on_older_data(store, run, SPLIT)
    _write(store, _rows("01-01-05-01-01-01-01", 2, 30))
    assert trained_on_older_data(store, run, SPLIT)


def test_what_cannot_be_worked_out_is_not_called_older(tmp_path):
    store = Store(str(tmp_path / "store"))  # empty: the run's data is not there to compare
    run = RunRecord("lr", "v", feature_params=SEED.to_dict(), feature_hash=SEED.hash(), data_hash="x")
    assert current_data_hash(store, run, SPLIT) is None and not trained_on_older_data(store, run, SPLIT)
    fused = RunRecord("fusion-late", "v", modality="fusion", feature_params=SEED.to_dict(), data_hash="x")
    assert current_data_hash(store, fused, SPLIT) is None  # a fused run's table needs every face embedded: not done
