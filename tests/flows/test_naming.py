"""Run names, tags and progress of what the Prefect UI shows, without a pipeline run."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

import tasks.artifacts as artifacts
from emotion.extract.chunk import extract_chunk
from emotion.extract.inventory import ClipRef, audio_step
from emotion.extract.plan import data_version
from emotion.video.frames import FrameParams
from flows.naming import frames_label, merge_tags, run_tags, short_id, split_label, split_used
from tasks.cluster import ClipCounter


def test_short_id_is_taken_from_the_random_end_of_the_run_id():
    a = uuid.UUID("01a23728-885f-7023-a2d1-e18d86abc519")  # UUID7: the start is a time stamp, shared by close runs
    assert short_id(a) == "abc519"


def test_the_split_shows_as_given_or_as_the_data_has_it():
    assert split_label(" train=1-20, test=21-24 ") == "train=1-20,test=21-24"
    assert split_used("train=1-20,test=21-24", range(1, 25)) == "train=1-20,test=21-24"
    assert split_used("train=1-20,test=21-24", ()) == "train=1-20,test=21-24"  # unknown: as given
    assert split_used("train=1-20,test=21-24", (1, 2, 3, 4, 21)) == "train=01-04,test=21"
    assert split_used("train=1-3,5,test=21-24", (1, 2, 3, 5, 7)) == "train=01-03,05,test=none"


def test_tags_carry_one_fact_each_and_replace_inherited_ones_of_their_kind():
    tags = run_tags(modality="audio", features="seed", split="train=1-20,test=21-24", data_version="1a2b3c4d",
                    speaker_norm=False, actors=(1, 2, 3, 4, 21))
    assert tags == ["modality:audio", "features:seed", "split:train=1-20,test=21-24", "actors:train=01-04,test=21",
                    "data:1a2b3c4d", "speaker-norm:no"]
    assert run_tags(split="train=1-20,test=21-24", actors=range(1, 25)) == ["split:train=1-20,test=21-24"]
    assert merge_tags(["modality:all", "features:seed", "split:x"], ["modality:audio", "data:1"]) == [
        "features:seed", "split:x", "modality:audio", "data:1"]


def test_the_data_version_is_the_same_for_the_same_clips_in_any_order():
    a, b = ClipRef("A/1.wav", "h1"), ClipRef("A/2.wav", "h2")
    assert data_version([a, b]) == data_version([b, a, a]) != data_version([a, ClipRef("A/2.wav", "h3")])
    assert len(data_version([a])) == 8


def test_a_chunk_reports_every_clip_it_finishes(corpus):
    refs = [ClipRef(str(p.relative_to(corpus)), "") for p in sorted(corpus.rglob("*.wav"))[:3]]
    refs.append(ClipRef("Actor_01/not-a-clip.wav", ""))  # a reject counts as done too
    seen: list[int] = []
    res = extract_chunk(audio_step(), refs, str(corpus), str(corpus.parent / "store"), on_clip=seen.append)
    assert seen == [1, 2, 3, 4] and res.processed == 3 and len(res.rejects) == 1


class _Client:
    def __init__(self) -> None:
        self.handlers: dict = {}

    def subscribe_topic(self, topic, handler) -> None:
        self.handlers[topic] = handler

    def unsubscribe_topic(self, topic) -> None:
        del self.handlers[topic]


def test_clip_counts_follow_the_workers_events_and_a_rerun_chunk_is_not_counted_twice():
    client = _Client()
    counter = ClipCounter(client, "t")  # type: ignore[arg-type]
    send = client.handlers["t"]
    for chunk, done in ((0, 1), (0, 2), (1, 1), (0, 1)):  # chunk 0 starts again elsewhere: its count never goes back
        send((0.0, {"chunk": chunk, "done": done}))
    assert counter.done() == 3 and counter.done([1]) == 1
    counter.finish(0, 40)
    assert counter.done() == 41 and counter.done([0]) == 40
    counter.close()
    assert not client.handlers


def test_progress_updates_move_in_small_steps_and_end_at_100(monkeypatch):
    updates: list[tuple[float, str]] = []
    monkeypatch.setattr(artifacts, "create_progress_artifact", lambda *a, **k: uuid.uuid4())
    monkeypatch.setattr(artifacts, "update_progress_artifact", lambda _id, p, description: updates.append((p, description)))
    p = artifacts.Progress(1200, "audio-extract-progress", "(audio, seed)", interval=0)
    for done in range(0, 1201, 3):
        p.set(done)
    values = [v for v, _ in updates]
    assert len(values) >= 100 and values == sorted(values) and values[-1] == 100.0
    assert updates[-1][1].endswith("1200 of 1200 clips (audio, seed)") and "█" in updates[-1][1]
    p.set(1200)
    assert len(updates) == len(values)  # nothing more once at 100 %


@pytest.mark.parametrize("fraction,bar", [(0, "░░░░"), (0.5, "██░░"), (1, "████"), (2, "████")])
def test_progress_bar(fraction, bar):
    assert artifacts.progress_bar(fraction, width=4) == bar


def test_every_task_run_of_an_extraction_carries_its_own_steps_modality(tiny_corpus, tmp_path):
    """Task runs inherit the run's tags (README), but the inventory tasks, run before the run's tags are set (the
    data version is computed from them), carried none; and in a --modality all run the video step's tasks were
    tagged modality:all. Now each task carries its own step's modality and features; the inventories no data tag
    (not known yet)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.extract import extract

    data = tmp_path / "data" / "Actor_01"  # 3 clips (no mp4: the video step finds nothing to do, but runs its tasks)
    data.mkdir(parents=True)
    for f in sorted((tiny_corpus / "Actor_01").glob("*.*"))[:3]:
        shutil.copy(f, data / f.name)
    state = extract(str(data.parent), str(tmp_path / "store"), "all", "seed", workers=1, return_state=True)
    assert state.is_completed(), state
    run_id = state.state_details.flow_run_id
    expected = {"inventory-audio", "inventory-video", "plan-audio", "plan-video", "commit-audio", "commit-video",
                "extract-audio-clips-0001-0003"}
    with get_client(sync_client=True) as client:
        version = next(t for t in client.read_flow_run(run_id).tags if t.startswith("data:"))
        deadline = time.monotonic() + 30  # the server records task runs from the events sent, a moment later
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            tags = {r.name: set(r.tags) for r in runs}
            if expected <= set(tags) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    assert expected <= set(tags), sorted(tags)
    audio = {"modality:audio", "features:seed"}
    video = {"modality:video", f"features:{frames_label(FrameParams())}"}
    assert tags["inventory-audio"] == audio and tags["inventory-video"] == video, tags
    for name in ("plan-audio", "commit-audio", "extract-audio-clips-0001-0003"):
        assert tags[name] == audio | {version}, (name, tags[name])
    for name in ("plan-video", "commit-video"):
        assert tags[name] == video | {version}, (name, tags[name])
