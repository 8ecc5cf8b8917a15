"""Fault injection: bad inputs, a worker killed mid-run, a run killed and resumed, tampered models, hostile archives.

Each test asserts what users care about: the exact set of rows in the store,
the rejects and their reasons, and the exit code.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotion.audio.seed import AudioFeatureParams
from emotion.core.errors import ModelIntegrityError
from emotion.models.persist import load_run
from emotion.store.store import Store
from emotion.video.frames import FrameParams
from flows.cli import main
from tests.services import BIN, free_port, port_open, process, reaped, service_env, wait_for

pytestmark = pytest.mark.slow
AUDIO_KEY = AudioFeatureParams().key
FRAMES_KEY = FrameParams().key


def wav_bytes(y: np.ndarray, sr: int = 22050) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def build_bad_corpus(audio: Path, video: Path, root: Path) -> tuple[set[str], dict[str, str]]:
    """Good synthetic clips with every kind of bad input mixed in; returns (good paths, bad path -> reason)."""
    shutil.copytree(audio / "Actor_01", root / "Actor_01")  # FLAC
    shutil.copytree(audio / "Actor_02", root / "Actor_02")  # WAV
    (root / "Actor_21").mkdir()
    for f in sorted((video / "Actor_21").glob("*.mp4"))[:6]:
        shutil.copy(f, root / "Actor_21" / f.name)
    good = {p.relative_to(root).as_posix() for p in root.rglob("*.*")}
    good_wav = (root / "Actor_02" / "03-01-02-01-01-01-02.wav").read_bytes()
    good_mp4 = sorted((root / "Actor_21").glob("*.mp4"))[0].read_bytes()
    bad: dict[str, str] = {}

    def put(rel: str, data: bytes, reason: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        good.discard(rel)
        bad[rel] = reason

    put("Actor_01/03-01-02-01-01-01-01.flac", b"", "empty file (0 bytes)")
    put("Actor_02/03-01-03-01-01-01-02.wav", good_wav[: len(good_wav) // 2], "WAV is cut off")
    flac = (audio / "Actor_01" / "03-01-04-01-01-01-01.flac").read_bytes()
    put("Actor_01/03-01-04-01-01-01-01.flac", flac[: len(flac) // 2], "FLAC is damaged or cut off: the decoder loses")
    put("Actor_02/03-01-04-01-01-01-02.wav", np.random.default_rng(0).bytes(8000), "cannot decode audio")
    put("Actor_21/01-01-04-01-01-01-21.mp4", np.random.default_rng(1).bytes(8000), "cannot open video")
    no_video = io.BytesIO()
    import av

    with av.open(no_video, "w", format="mp4") as out:
        s = out.add_stream("aac", rate=48000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        fr.sample_rate = 48000
        for pkt in [*s.encode(fr), *s.encode()]:
            out.mux(pkt)
    put("Actor_21/01-01-05-01-01-01-21.mp4", no_video.getvalue(), "no video stream")
    put("Actor_21/01-01-06-01-01-01-21.mp4", good_mp4[: len(good_mp4) * 2 // 3], "video is cut off")
    put("Actor_02/03-01-05-01-01-01-02.wav", wav_bytes(np.zeros(22050)), "audio is silent")
    put("Actor_02/03-01-05-01-02-01-02.wav", wav_bytes(0.3 * np.ones(300)), "clip too short")
    put("Actor_02/recording-final.wav", good_wav, "not a RAVDESS id")
    put("Actor_02/03-01-09-01-01-01-02.wav", good_wav, "emotion 09")
    put("Actor_25/03-01-03-01-01-01-25.wav", good_wav, "actor 25")
    put("Actor_02/03-01-01-02-01-01-02.wav", good_wav, "neutral clips have no strong intensity")
    put("copies/03-01-02-01-01-01-02.wav", good_wav, "duplicate id 03-01-02-01-01-01-02")
    (root / "Actor_02" / "03-01-06-01-01-02-02.wav").symlink_to(root / "nowhere.wav")
    bad["Actor_02/03-01-06-01-01-02-02.wav"] = "broken symbolic link"
    (root / "Actor_20").mkdir()
    os.mkfifo(root / "Actor_20" / "03-01-08-02-02-02-20.wav")  # reading it would block forever
    bad["Actor_20/03-01-08-02-02-02-20.wav"] = "not a regular file (a FIFO)"
    if os.geteuid() != 0:  # root reads any file: permissions cannot make one unreadable
        p = root / "Actor_02" / "03-01-07-01-01-01-02.wav"
        p.chmod(0)
        good.discard(p.relative_to(root).as_posix())
        bad[p.relative_to(root).as_posix()] = "permission denied"
    return good, bad


def test_every_bad_input_is_named_and_the_run_goes_on(tiny_corpus, tiny_video_corpus, tmp_path, capfd):
    data, out = tmp_path / "data", tmp_path / "store"
    good, bad = build_bad_corpus(tiny_corpus, tiny_video_corpus, data)
    code = main(["extract", str(data), "--out", str(out), "--workers", "2", "--json"])
    cap = capfd.readouterr()
    assert code == 0 and "Traceback" not in cap.err
    s = json.loads(cap.out)
    rejects = {r["path"]: r["reason"] for r in s["rejects"]}
    assert set(rejects) == set(bad), (set(rejects) ^ set(bad))
    for path, reason in bad.items():
        assert reason in rejects[path], (path, rejects[path])
        assert "\n" not in rejects[path]
    store = Store(str(out))
    stored = set(store.read_features("audio", AUDIO_KEY)["path"]) | set(store.read_dataset("frames", FRAMES_KEY)["path"])
    assert stored == good  # exactly the good clips, each once
    on_disk = set(store.read_rejects("audio")["path"]) | set(store.read_rejects("video")["path"])
    assert on_disk == set(bad)
    # --strict: the same run fails with a non-zero exit, after writing everything else
    assert main(["extract", str(data), "--out", str(out), "--workers", "1", "--strict"]) == 1
    assert set(store.read_features("audio", AUDIO_KEY)["path"]) | set(store.read_dataset("frames", FRAMES_KEY)["path"]) == good


def _parts(out: Path) -> list[Path]:
    return sorted((out / "features" / "audio" / AUDIO_KEY).glob("part-*.parquet"))


def _assert_exactly_once(out: Path, n: int) -> None:
    store = Store(str(out))
    physical = store.read_parts(store.list_parts(store.features_dir("audio", AUDIO_KEY)))
    assert len(physical) == n and physical["path"].is_unique  # every clip in exactly one row on disk
    assert not list((out / "features" / "audio" / AUDIO_KEY).glob(".tmp-*"))


def test_a_worker_killed_mid_run_loses_nothing(corpus, tmp_path):
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = service_env(tmp_path)
    sched = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    worker = [str(BIN / "dask"), "worker", addr, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"]
    out = tmp_path / "store"
    with process(sched, tmp_path / "s.log", env) as sp:
        wait_for(lambda: port_open(port), 60, "dask scheduler", sp)
        with process(worker + ["--name", "survivor"], tmp_path / "w1.log", env), \
             process(worker + ["--name", "victim"], tmp_path / "w2.log", env) as victim:
            from distributed import Client

            with Client(addr, timeout="30s") as c:
                c.wait_for_workers(2, timeout=60)
            cmd = [str(BIN / "emotion"), "extract", str(corpus), "--out", str(out), "--modality", "audio",
                   "--dask-address", addr, "--chunk-size", "2", "--json"]
            with reaped(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         env={**os.environ, **env}, start_new_session=True)) as run:
                wait_for(lambda: len(_parts(out)) >= 3, 120, "the first parts")
                os.killpg(victim.pid, signal.SIGKILL)  # the worker and its nanny, mid-run
                killed_with_parts = len(_parts(out))
                stdout, stderr = run.communicate(timeout=300)
    assert killed_with_parts < 60, "the run finished before the kill: the test proves nothing"
    assert run.returncode == 0, stderr[-3000:]
    s = json.loads(stdout)
    assert (s["processed"], s["rejected"]) == (120, 0)
    _assert_exactly_once(out, 120)


def test_a_run_killed_with_sigkill_resumes_without_redoing_work(corpus, tmp_path):
    out = tmp_path / "store"
    env = {**os.environ, **service_env(tmp_path)}
    cmd = [str(BIN / "emotion"), "extract", str(corpus), "--out", str(out), "--modality", "audio", "--workers", "1",
           "--chunk-size", "3", "--json"]
    with reaped(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                 start_new_session=True)) as run:
        wait_for(lambda: len(_parts(out)) >= 4, 180, "the first parts")
        os.killpg(run.pid, signal.SIGKILL)  # the CLI, its Dask workers and its Prefect server, at once
        run.wait()
    done = Store(str(out)).read_features("audio", AUDIO_KEY)  # readable: only complete parts are visible
    assert 0 < len(done) < 120 and done["path"].is_unique
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads(res.stdout)
    assert s["skipped"] == len(done) and s["processed"] == 120 - len(done)  # finished work is not redone
    _assert_exactly_once(out, 120)


def test_ctrl_c_stops_extract_at_once_with_one_line_and_the_rerun_finishes(corpus, tmp_path):
    """Ctrl-C: the terminal sends SIGINT to the whole process group (the CLI, its Dask workers, Prefect's temporary
    server). The command stops within seconds, exit 130, with one line of its own (no tracebacks, no minutes of
    retries against a server that died with it); the rerun stores every clip once."""
    out = tmp_path / "store"
    env = {k: v for k, v in {**os.environ, **service_env(tmp_path)}.items() if k != "PREFECT_API_URL"}
    # one worker, one clip a chunk: the signal lands with most of the 120 chunks to go, even on a loaded machine (with
    # 2 workers and 3 clips a chunk the run had finished when it came, once)
    cmd = [str(BIN / "emotion"), "extract", str(corpus), "--out", str(out), "--modality", "audio", "--workers", "1",
           "--chunk-size", "1"]
    # as from a terminal: SIGINT at its default (a shell starts background jobs, e.g. a CI run, with it ignored, and
    # the command keeps an inherited ignore, as Unix programs do)
    with reaped(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                 start_new_session=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))) as run:
        wait_for(lambda: len(_parts(out)) >= 2, 180, "the first parts")
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does
        stdout, err = run.communicate(timeout=60)
    assert "processed" not in stdout, "the run finished before the signal: the test proves nothing"
    assert run.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "emotion: interrupted" and "Traceback" not in err, err[-3000:]
    assert len(err.strip().splitlines()) <= 3, err[-3000:]  # the flow run's name, the progress line at most
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_exactly_once(out, 120)


def _in_group(pgid: int) -> list[str]:
    """Live processes (not zombies) of process group ``pgid``: their command lines."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat_fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if stat_fields[0] != "Z" and int(stat_fields[2]) == pgid:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):  # gone meanwhile
            pass
    return found


def test_ctrl_c_while_the_local_cluster_starts_is_one_line_and_leaves_no_process(corpus, tmp_path):
    """Ctrl-C as the worker processes of the local cluster start: the terminal sends it to them too. It printed
    1-3 tracebacks around "emotion: interrupted" (KeyboardInterrupt in multiprocessing's spawn of a worker, "Fatal
    Python error: init_import_site", "AssertionError: Status.init" from Dask closing a half-started cluster at exit).
    Now: exit 130, that one line, no traceback, and no process of the command left behind."""
    import pty
    import select
    import time

    env = {k: v for k, v in {**os.environ, **service_env(tmp_path)}.items() if k != "PREFECT_API_URL"}
    # 120 clips in chunks of 5 on 2 workers: the local cluster of worker processes (not the in-process one of small
    # work, tasks.cluster.SMALL_WORK); the progress line says "starting the Dask workers" on a terminal only
    cmd = [str(BIN / "emotion"), "extract", str(corpus), "--out", str(tmp_path / "store"), "--modality", "audio",
           "--full", "--workers", "2", "--chunk-size", "5"]
    for delay in (0.2, 0.7, 1.2):  # after the line: as the workers are spawned, import Python, start Dask
        master, slave = pty.openpty()
        run = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        os.close(slave)
        seen, sent = bytearray(), None
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if select.select([master], [], [], 0.05)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # the terminal closed: the command exited
                        chunk = b""
                    if not chunk:
                        break
                    seen.extend(chunk)
                if sent is None and b"starting the Da" in seen:  # the line is cut to the terminal's width
                    time.sleep(delay)
                    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does
                    sent = time.monotonic()
            code = run.wait(60)
            out = seen.decode(errors="replace")
            assert sent is not None, out[-3000:]
            assert "processed" not in out, "the run finished before the signal: the test proves nothing"
            assert code == 130, out[-3000:]
            assert "emotion: interrupted" in out, out[-3000:]
            assert "Traceback" not in out and "Fatal Python error" not in out, out[-6000:]
            left = _in_group(run.pid)
            for _ in range(40):  # the workers exit with the command, within seconds
                if not left:
                    break
                time.sleep(0.25)
                left = _in_group(run.pid)
            assert not left, left
        finally:
            os.close(master)
            if run.poll() is None or _in_group(run.pid):
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()


def test_a_merge_that_fails_is_a_warning_and_the_run_keeps_its_rows(corpus, tmp_path, capsys, monkeypatch):
    from emotion.core.errors import StoreError

    def full_disk(self, folder, **_k):
        raise StoreError(f"cannot write {folder}/part-x.parquet: No space left on device")

    monkeypatch.setattr(Store, "merge_small_parts", full_disk)
    out = tmp_path / "store"
    code = main(["extract", str(corpus), "--out", str(out), "--modality", "audio", "--workers", "1",
                 "--chunk-size", "5", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    audio = json.loads(captured.out)["modalities"]["audio"]
    assert (audio["processed"], audio["merged_parts"], audio["parts"]) == (120, 0, 24)
    assert "small parts not merged (cannot write" in captured.err and "No space left on device" in captured.err
    _assert_exactly_once(out, 120)
    assert Store(str(out)).exists(str(out / "manifest" / "audio.parquet"))  # the run's outputs landed first


def test_tampered_and_swapped_models_are_refused(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["run", str(tiny_corpus), "--out", str(out), "--split", "train=1-3,test=21", "--features", "seed",
                 "--model", "svc,rf",
                 "--n-iter", "1", "--no-refine", "--workers", "1", "--jobs", "1", "--json"]) == 0
    runs = {m["model"]: Path(m["run_dir"]) for m in json.loads(capsys.readouterr().out)["train"]["models"]}
    store = Store(str(out))
    load_run(store, str(runs["svc"]))  # intact: loads
    model = runs["svc"] / "model.skops"
    original = model.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 3] ^= 0xFF
    model.write_bytes(bytes(tampered))
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_run(store, str(runs["svc"]))
    model.write_bytes((runs["rf"] / "model.skops").read_bytes())  # a valid model, but not this run's
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_run(store, str(runs["svc"]))
    model.write_bytes(original)
    load_run(store, str(runs["svc"]))


def test_hostile_archives_are_refused_and_nothing_escapes(tiny_corpus, tmp_path, capsys):
    data = tmp_path / "inside" / "data"
    data.mkdir(parents=True)
    good = sorted((tiny_corpus / "Actor_01").glob("*.flac"))[:3]
    with zipfile.ZipFile(data / "Audio_Speech_Actors_01-24.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in good:
            zf.write(f, f"Actor_01/{f.name}")
        zf.writestr("../../escaped/03-01-05-01-01-01-01.wav", good[0].read_bytes())
        zf.writestr("/tmp/absolute/03-01-05-01-02-01-01.wav", good[0].read_bytes())
        link = zipfile.ZipInfo("Actor_01/03-01-06-01-01-01-01.wav")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        bomb = zipfile.ZipInfo("Actor_01/03-01-07-01-01-01-01.wav")
        bomb.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(bomb, b"\0" * 20_000_000)
    out = tmp_path / "inside" / "store"
    assert main(["extract", str(data), "--out", str(out), "--modality", "audio", "--workers", "1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    reasons = {r["path"].split("/", 1)[1]: r["reason"] for r in s["rejects"]}
    assert "escapes its folder" in reasons["../../escaped/03-01-05-01-01-01-01.wav"]
    assert "absolute path" in reasons["tmp/absolute/03-01-05-01-02-01-01.wav"]
    assert "symbolic link" in reasons["Actor_01/03-01-06-01-01-01-01.wav"]
    assert "compression ratio" in reasons["Actor_01/03-01-07-01-01-01-01.wav"]
    assert s["processed"] == 3 and s["rejected"] == 4
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/absolute").exists()
    assert sorted(p.name for p in data.iterdir()) == ["Audio_Speech_Actors_01-24.zip"]  # nothing unpacked
