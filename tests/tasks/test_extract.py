"""The extraction tasks: an outcome the summary reports is returned, not raised (Prefect would log it as a failure)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest
from distributed import Client, Future, LocalCluster
from prefect.states import State

from emotion.extract.inventory import audio_step
from emotion.video.frames import FrameParams
from tasks.extract import landmark_features, run_chunk


def test_no_landmark_features_is_an_outcome_not_a_failed_task(tmp_path):
    """No face-crop frame with a face (here: none stored): the task returns the reason for the summary."""
    faces = landmark_features.fn(str(tmp_path), FrameParams(face_crop=True))
    assert set(faces) == {"error"} and "face256-every20" in faces["error"]
    assert len(faces["error"].splitlines()) == 1


def test_a_chunk_whose_client_the_flow_closes_ends_cancelled_not_failed(tmp_path):
    """The flow run stops (cancelled from the UI, its process terminated: here an interruption) and leaves its Dask
    client's ``with`` while a chunk waits: the chunk ends Cancelled, which a served run logs at INFO; it failed with
    FutureCancelledError. The same client closed by anything else (Dask on its own) is a failure still."""
    from tasks.cluster import dask_client

    ended: list[object] = []

    def wait(client: Client) -> None:
        try:
            ended.append(run_chunk.fn(0, audio_step(), [], str(tmp_path), str(tmp_path / "store"), client, first=40))
        except BaseException as exc:  # noqa: BLE001 - what the task raised, for the test to see
            ended.append(exc)

    # no worker: the chunk waits
    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1", dashboard_address=None) \
            as cluster:
        with pytest.raises(KeyboardInterrupt), dask_client(cluster.scheduler_address) as client:
            waiting = threading.Thread(target=wait, args=(client,), daemon=True)
            waiting.start()
            time.sleep(1.0)
            raise KeyboardInterrupt
        waiting.join(30)
        assert len(ended) == 1 and isinstance(ended[0], State), ended
        assert ended[0].is_cancelled() and ended[0].message == "audio clips 41-40 not done: the flow run stopped"

        client = Client(cluster.scheduler_address)
        waiting = threading.Thread(target=wait, args=(client,), daemon=True)
        waiting.start()
        time.sleep(1.0)
        client.close()  # not by dask_client
        waiting.join(30)
    # raised, not told Cancelled: FutureCancelledError, or "IOLoop is closed" where the wait sees the loop go first
    assert len(ended) == 2 and isinstance(ended[1], (CancelledError, RuntimeError)), ended


def test_a_chunk_cancelled_while_its_client_runs_still_fails(tmp_path):
    """A future cancelled under a running client (the scheduler lost it) is a failure, not the run's stop."""
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            run_chunk.fn(0, audio_step(), [], str(tmp_path), str(tmp_path / "store"), client)
        except BaseException as exc:  # noqa: BLE001 - what the task raised, for the test to see
            raised.append(exc)

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        waiting = threading.Thread(target=wait, daemon=True)
        waiting.start()
        time.sleep(1.0)
        client.cancel([Future(key, client) for key in list(client.futures)])
        waiting.join(30)
    assert len(raised) == 1 and isinstance(raised[0], CancelledError), raised


def test_an_mp4_the_other_modality_kept_counts_as_kept(tmp_path):
    """Of one recording under two mp4 ids, the audio and the video extractions keep the same clip (fusion pairs
    them by clip): the clips the other modality's manifest kept count, mp4s only; this modality's own record wins."""
    import pandas as pd

    from emotion.extract.inventory import load_known
    from emotion.store.store import Store
    from tasks.extract import _kept

    store = Store(str(tmp_path))

    def manifest(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
        return pd.DataFrame([{"path": p, "content_hash": h, "status": st, "meta": "m"} for p, h, st in rows])

    store.write_manifest("audio", manifest([("A/01-01-03-01-01-01-01.mp4", "h", "ok"),
                                            ("A/03-01-03-01-01-01-01.wav", "w", "ok"),
                                            ("A/01-01-04-01-01-01-01.mp4", "r", "rejected")]))
    store.write_manifest("video", manifest([("A/01-01-05-01-01-01-01.mp4", "v", "ok")]))
    assert _kept(store, load_known(store, "video"), "video") == {"A/01-01-03-01-01-01-01.mp4": "h",
                                                               "A/01-01-05-01-01-01-01.mp4": "v"}
    assert _kept(store, load_known(store, "audio"), "audio") == {"A/01-01-03-01-01-01-01.mp4": "h",
                                                               "A/03-01-03-01-01-01-01.wav": "w",
                                                               "A/01-01-05-01-01-01-01.mp4": "v"}
