"""The ``emotion`` command line: synth, extract, train, evaluate, run, demo, predict, server, deploy.

Every command prints a readable summary (``--json`` for a machine-readable
one) and exits 0 on success, 1 when the pipeline fails, and 2 with a one-line
message on bad usage or a missing path.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

# Quiet defaults, set before Prefect, Dask or TensorFlow are imported.
for _k, _v in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DASK_LOGGING__DISTRIBUTED": "warning",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    # the temporary Prefect server (no PREFECT_API_URL) gets 2 minutes to start, not 20 s: on 2 busy cores
    # (a training run beside it) it took longer, and the command died with "Timed out ... ephemeral Prefect API"
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_k, _v)

from emotion.audio.synth import SynthParams, write_corpus  # noqa: E402
from emotion.core.errors import EmotionError, UsageError  # noqa: E402
from emotion.core.ids import MAX_ACTOR  # noqa: E402
from emotion.core.splits import DEFAULT_SPLIT, ActorSplit, parse_actors  # noqa: E402
from emotion.featuresets import FEATURE_SET_NAMES, feature_set  # noqa: E402
from emotion.models.catalog import DEFAULT_MODELS, MODELS, SearchParams, check_features, default_models  # noqa: E402
from emotion.models.frame_nets import NN_MODELS  # noqa: E402
from emotion.models.fusion import FUSION_MODELS  # noqa: E402
from emotion.video.frames import FrameParams  # noqa: E402


class _DomainErrorsWithoutTraceback(logging.Filter):
    """Console logs keep the message of our own errors (bad input) but not their traceback.

    The Prefect API still records the full traceback with the failed run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EmotionError):
            record.exc_info = None
            record.exc_text = None
        return True


def check_prefect_api() -> None:
    """Fail with a clear message when ``PREFECT_API_URL`` names a server that does not answer."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return  # Prefect starts a temporary server for this command
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/health", timeout=5).raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        raise EmotionError(
            f"the Prefect server at PREFECT_API_URL={url} is not reachable ({type(exc).__name__}); "
            "start it with `emotion server`, or unset PREFECT_API_URL to run with a temporary one"
        ) from None


def _flows() -> Any:
    """Import the flows (and so Prefect) on first use; synth needs neither."""
    check_prefect_api()
    from prefect.logging.handlers import PrefectConsoleHandler

    import flows.evaluate
    import flows.extract
    import flows.run
    import flows.train

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _DomainErrorsWithoutTraceback) for f in handler.filters):
            handler.addFilter(_DomainErrorsWithoutTraceback())
        if isinstance(handler, PrefectConsoleHandler):
            # main() may run many times in one process (tests, notebooks): log to the stderr of this call
            handler.console.file = sys.stderr
    return flows


ALL_MODELS = (*MODELS, *NN_MODELS, *FUSION_MODELS)


def _models(values: list[str] | None, default: str = ",".join(DEFAULT_MODELS)) -> list[str]:
    names: list[str] = []
    for v in values or [default]:
        names.extend(n.strip() for n in v.split(",") if n.strip())
    bad = [n for n in names if n not in ALL_MODELS]
    if bad:
        raise UsageError(f"unknown model {bad[0]!r}; choose from {', '.join(ALL_MODELS)}")
    return list(dict.fromkeys(names))


def _check_features(audio_models: tuple[str, ...], features: str) -> None:
    """Refuse, before anything runs, an audio model that cannot read the feature set."""
    for m in audio_models:
        check_features(m, features)


def _frames(args: argparse.Namespace) -> FrameParams:
    haar = getattr(args, "face_detector", "mesh") == "haar"
    return FrameParams(every=args.every, size=args.frame_size, face_crop=args.face_crop,
                       detector="haar" if haar else "mesh", margin=0.25 if haar else 0.0)


def _video_params(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per-model settings of the video models from the command line (``--epochs``: the total budget)."""
    if args.epochs is None:
        return {}
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    head = max(1, args.epochs // 3)
    return {"cnn": {"epochs": args.epochs}, "fer": {"epochs": head, "tune_epochs": args.epochs - head}}


def _existing_dir(path: str, what: str) -> str:
    _not_in_memory(path)
    if "://" in path:
        return path
    if not Path(path).is_dir():
        raise UsageError(f"{what} {path!r} does not exist or is not a folder")
    return str(Path(path).resolve())


def _not_in_memory(path: str) -> None:
    if path.lower().startswith("memory://"):
        raise UsageError(f"{path!r}: a memory:// store lives only as long as the command and would keep nothing; "
                         "use a folder or object storage")


def _out_dir(path: str) -> str:
    _not_in_memory(path)
    if "://" in path:
        return path
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"output {path!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {path!r}: {exc.strerror or exc}") from None
    return str(p.resolve())


def _split(text: str) -> str:
    """The split as the user gave it (checked here, so a bad one stops before anything runs), for run names."""
    ActorSplit.parse(text)
    return "".join(text.split())


def _search(args: argparse.Namespace) -> SearchParams:
    if args.n_iter < 1 or args.cv_folds < 2:
        raise UsageError("--n-iter must be at least 1 and --cv-folds at least 2")
    return SearchParams(n_iter=args.n_iter, cv_folds=args.cv_folds, refine=not args.no_refine, seed=args.seed)


# -- output -----------------------------------------------------------------
COUNTS = ("processed", "skipped", "removed", "rejected")


def extract_payload(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Totals over modalities at the top (``processed``, ``skipped``, ``removed``, ``rejected``), details below."""
    total: dict[str, Any] = {k: sum(s[k] for s in summaries.values()) for k in COUNTS}
    total["seconds"] = max((s["seconds"] for s in summaries.values()), default=0.0)
    total["workers"] = sorted({w for s in summaries.values() for w in s["workers"]})
    total["no_audio"] = sum(s.get("no_audio", 0) for s in summaries.values())
    total["rejects"] = [{**r, "modality": m} for m, s in summaries.items() for r in s["rejects"]]
    total["no_audio_clips"] = [r for s in summaries.values() for r in s.get("no_audio_clips", [])]
    total["modalities"] = {m: {k: v for k, v in s.items() if k not in ("rejects", "no_audio_clips")}
                           for m, s in summaries.items()}
    return total


def _print_extract(s: dict[str, Any]) -> None:
    for m, d in s["modalities"].items():
        what = "features" if m == "audio" else "frames"
        absent = f", {d['no_audio']} without audio (video-only)" if m == "audio" else ""
        print(f"extract {m}: {d['processed']} processed, {d['skipped']} skipped, {d['removed']} removed, "
              f"{d['rejected']} rejected{absent} in {d['seconds']:.1f} s ({what} {d['feature_set']})")
        faces = d.get("faces") or {}
        if faces.get("error"):
            print(f"  faces: {faces['error']}")
        elif faces:
            print(f"  faces: found in {faces['frames_with_face']} of {faces['frames']} kept frames "
                  f"({100 * faces['face_rate']:.1f} %); {len(faces['clips_without_face'])} clip(s) without any face; "
                  f"landmark features {faces['feature_set']}")
            for p in faces["clips_without_face"][:10]:
                print(f"    no face in any kept frame of {p}")
    for r in s["rejects"][:20]:
        print(f"  rejected {r['path']}: {r['reason']}")
    if len(s["rejects"]) > 20:
        print(f"  ... and {len(s['rejects']) - 20} more (see OUT/rejects/)")
    for r in s["no_audio_clips"][:10]:
        print(f"  no audio features for {r['path']}: {r['reason']}")
    if len(s["no_audio_clips"]) > 10:
        print(f"  ... and {len(s['no_audio_clips']) - 10} more clips without audio (see OUT/manifest/no_audio.parquet)")


def _print_train(t: dict[str, Any]) -> None:
    norm = ", speaker-normalised" if t.get("speaker_norm") else ""
    audio = f" (audio features {t['features']}{norm})" if t.get("features") else ""
    print(f"split {t['split']}{audio}: models ranked by per-clip accuracy on the test actors")
    print(f"  {'model':<12} {'input':<6} {'accuracy':>8} {'macro-F1':>8} {'UAR':>6} {'validation acc':>15} {'train':>6} "
          f"{'test':>5}  run")
    for r in t["models"]:
        cv = "–" if r["cv_accuracy"] != r["cv_accuracy"] else f"{r['cv_accuracy']:.3f}±{r['cv_std']:.3f}"  # NaN: none
        name = f"{r['model']}/landmarks" if r.get("features") == "landmarks" else r["model"]  # lr on the face's geometry
        print(f"  {name:<12} {r.get('modality', 'audio'):<6} {r['accuracy']:>8.3f} {r['macro_f1']:>8.3f} "
              f"{r['uar']:>6.3f} {cv:>15} {r['n_train']:>6} {r['n_test']:>5}  "
              f"{r['run_dir']}{' (reused)' if r.get('reused') else ''}")
    print("  (validation: actor-grouped CV for audio and fused models, held-out training actors for video models)")
    print(f"  summary: {t['summary']}")
    if t.get("report"):
        print(f"  report:  {t['report']}")


def _emit(args: argparse.Namespace, payload: dict[str, Any], printer: Any) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        printer(payload)


# -- commands -----------------------------------------------------------------
# option -> (smallest, largest) value it may take; checked for every command before it runs
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "chunk_size": (1, 100_000), "jobs": (1, 1024), "workers": (1, 1024), "every": (1, 10_000),
    "frame_size": (16, 4096), "epochs": (1, 10_000), "n_iter": (1, 100_000), "cv_folds": (2, 100),
    "port": (1, 65535), "duration": (0.25, 600), "repetitions": (1, 2),
}


def check_numbers(args: argparse.Namespace) -> None:
    """A one-line :class:`UsageError` (exit 2) for any number on the command line outside its range."""
    for name, (lo, hi) in NUMBER_RANGES.items():
        v = getattr(args, name, None)
        if v is None or isinstance(v, bool):
            continue
        if not lo <= v <= hi or v != v:
            raise UsageError(f"--{name.replace('_', '-')} must be between {lo:g} and {hi:g}, got {v:g}")


def cmd_synth(args: argparse.Namespace) -> int:
    actors = parse_actors(args.actors)
    if max(actors) > MAX_ACTOR:
        raise UsageError(f"--actors {args.actors}: RAVDESS actors are 01-{MAX_ACTOR}, so extraction would reject "
                         f"actor {max(actors)}")
    params = SynthParams(actors=parse_actors(args.actors), repetitions=args.repetitions,
                         duration=args.duration, seed=args.seed, signal=args.signal)
    t0 = time.perf_counter()
    paths = write_corpus(_out_dir(args.dir), params)
    videos = []
    if args.video:
        from emotion.video.synth import VideoSynthParams, write_video_corpus

        videos = write_video_corpus(args.dir, VideoSynthParams(actors=params.actors, repetitions=args.repetitions,
                                                               seed=args.seed, signal=args.signal),
                                    workers=args.workers)
    payload = {"dir": str(Path(args.dir).resolve()), "clips": len(paths), "videos": len(videos),
               "actors": list(params.actors), "seconds": round(time.perf_counter() - t0, 2)}
    _emit(args, payload, lambda p: print(f"synth: wrote {p['clips']} audio clips and {p['videos']} mp4 clips of actors "
                                         f"{args.actors} to {p['dir']} in {p['seconds']:.1f} s"))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from emotion.store.store import Store

    data, out = _existing_dir(args.data, "data root"), _out_dir(args.out)
    with Store(out).writer_lock(f"emotion extract {data}"):  # a second writer is refused before Prefect starts
        return _extract_locked(args, data, out)


def _extract_locked(args: argparse.Namespace, data: str, out: str) -> int:
    extract = _flows().extract.extract
    s = extract(data, out, args.modality, _features(args), _frames(args), full=args.full,
                chunk_size=args.chunk_size, dask_address=args.dask_address, workers=args.workers,
                replace_data=args.replace_data)
    payload = extract_payload({m: v.to_dict() for m, v in s.items()})
    _emit(args, payload, _print_extract)
    return _strict_exit(args, payload)


def _strict_exit(args: argparse.Namespace, extracted: dict[str, Any]) -> int:
    """With ``--strict``, any reject fails the command (after everything else was written)."""
    if getattr(args, "strict", False) and extracted["rejected"]:
        print(f"emotion: {extracted['rejected']} file(s) rejected and --strict is set", file=sys.stderr)
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    fl = _flows()
    out = _existing_dir(args.out, "store")
    split = _split(args.split)
    audio, video, fusion = fl.run.split_models(tuple(_models(args.model, ",".join(default_models(args.features)))))
    _check_features(audio, args.features)
    t = fl.run.train_models(out, split, audio, video, fusion, _features(args), _search(args),
                            _frames(args), _video_params(args), n_jobs=args.jobs, force=args.force,
                            speaker_norm=args.speaker_norm)
    _emit(args, t, _print_train)
    return 0


def _run(args: argparse.Namespace, data: str, out: str) -> dict[str, Any]:
    fl = _flows()
    split = _split(args.split)
    audio, video = ",".join(default_models(args.features)), ",".join(NN_MODELS)
    default = {"audio": audio, "video": video}.get(args.modality, ",".join((audio, video, *FUSION_MODELS)))
    models = tuple(_models(args.model, default))
    _check_features(fl.run.split_models(models)[0], args.features)
    r = fl.run.run_pipeline(data, out, split, models, _features(args),
                            _search(args), modality=args.modality, frames=_frames(args),
                            video_params=_video_params(args), full=args.full, dask_address=args.dask_address,
                            workers=args.workers, n_jobs=args.jobs, speaker_norm=args.speaker_norm)
    return {**r, "extract": extract_payload(r["extract"])}


def _print_run(r: dict[str, Any]) -> None:
    _print_extract(r["extract"])
    for n in r.get("notes", []):
        print(f"note: {n}")
    if r["train"]["models"]:
        _print_train(r["train"])


def cmd_run(args: argparse.Namespace) -> int:
    data, out = _existing_dir(args.data, "data root"), _out_dir(args.out)
    r = _run(args, data, out)
    _emit(args, r, _print_run)
    return _strict_exit(args, r["extract"])


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(_out_dir(args.out))
    data = out / "data"
    params = SynthParams(actors=parse_actors(args.actors))
    t0 = time.perf_counter()
    if not args.json:
        what = {"audio": "audio", "video": "video", "all": "audio and video"}[args.modality]
        print(f"demo: writing a synthetic {what} corpus ({len(params.actors)} actors) to {data}", flush=True)
    if args.modality in ("audio", "all"):
        write_corpus(data, params)
    if args.modality in ("video", "all"):
        from emotion.video.synth import VideoSynthParams, write_video_corpus

        write_video_corpus(data, VideoSynthParams(actors=params.actors), workers=args.workers)
    r = _run(args, str(data), str(out / "store"))
    if args.modality in ("video", "all") and _frames(args).detector == "mesh":
        # the face's geometry: logistic regression on the landmarks feature set of the face crops just extracted
        from emotion.video.landmarks import LandmarkParams

        lm = LandmarkParams(every=args.every, size=args.frame_size)
        t = _flows().run.train_models(str(out / "store"), r["train"]["split"], ("lr",), (), (), lm, _search(args),
                                      _frames(args), None, n_jobs=args.jobs, force=args.full)
        r["train"]["models"] = sorted([*r["train"]["models"], *({**m, "modality": "video"} for m in t["models"])],
                                      key=lambda m: (-m["accuracy"], m["model"]))
        r["train"]["report"] = t.get("report") or r["train"].get("report")
    r["seconds"] = round(time.perf_counter() - t0, 1)
    _emit(args, r, _print_run)
    if not args.json:
        print(f"demo finished in {r['seconds']:.0f} s; outputs under {out / 'store'}")
    return 0


def _print_loso(t: dict[str, Any]) -> None:
    norm = ", speaker-normalised" if t["speaker_norm"] else ""
    print(f"leave-one-actor-out over the training actors of {t['split']} (features {t['features']}{norm}; "
          f"hyper-parameters {t['mode']}):")
    for r in t["models"]:
        per = " ".join(f"{a}:{v:.2f}" for a, v in r["per_actor"].items())
        print(f"  {r['model']:<8} mean {r['mean']:.3f}  std {r['std']:.3f}  min {r['min']:.3f}  max {r['max']:.3f}"
              f"  ({r['n_actors']} actors, {r['seconds']:.0f} s)")
        print(f"           per actor: {per}")
    if t["mode"] == "fixed":
        print("  note: fixed hyper-parameters come from the stored runs, chosen with these actors: mildly optimistic")
    print(f"  summary: {t['summary']}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if not args.loso:
        raise UsageError("evaluate needs --loso (leave-one-actor-out over the training actors; the only evaluation so far)")
    if args.params_from and not args.fixed_params:
        raise UsageError("--params-from needs --fixed-params")
    evaluate_loso = _flows().evaluate.evaluate_loso
    out = _existing_dir(args.out, "store")
    split = _split(args.split)
    features = _features(args)
    models = tuple(_models(args.model or ["lr"]))
    _check_features(models, args.features)
    t = evaluate_loso(out, split, models, features, _search(args),
                      speaker_norm=args.speaker_norm, mode="fixed" if args.fixed_params else "nested", n_jobs=args.jobs,
                      params_from=str(ActorSplit.parse(args.params_from)) if args.params_from else None)
    _emit(args, t, _print_loso)
    return 0


def _print_predictions(payload: dict[str, Any]) -> None:
    for r in payload["files"]:
        if r.get("error"):
            print(f"{r['file']}: error: {r['error']}")
            continue
        label = f"  (file name says {r['label']})" if r.get("label") else ""
        if r["emotion"] is None:
            print(f"{r['file']}: no prediction{label}")
        else:
            print(f"{r['file']}: {r['emotion']} ({r['probabilities'][r['emotion']]:.2f}) from "
                  f"{' + '.join(r['modalities_used'])}{label}")
            print("  " + "  ".join(f"{k} {v:.2f}" for k, v in r["probabilities"].items()))
            print(f"  model: {r['model']}")
        for note in r["notes"]:
            print(f"  {note}")
        if r.get("timeline"):
            print(f"  timeline of the face model {r.get('timeline_model')} (time, top two emotions):")
            for t in r["timeline"]:
                print(f"    {t['time']:6.2f} s  frame {t['frame_index']:>4}  "
                      + ", ".join(f"{x['emotion']} {x['probability']:.2f}" for x in t["top"]))
            own = r.get("timeline_outcome") or {}
            same = r.get("timeline_model") == r.get("model")
            kind = "fused" if "/fusion-" in str(r.get("model")) else "voice" if r["modalities_used"] == ["audio"] else "face"
            print(f"  clip outcome of this face model: {own.get('emotion')} ({own.get('probability', 0):.2f})"
                  + ("" if same else f"; the outcome above ({r['emotion']}) is the {kind} model's"))


def cmd_predict(args: argparse.Namespace) -> int:
    from emotion.predict import Prediction, load_predictors, predict_files

    if not args.store and not args.model and any(not f.lower().endswith(".mp4") for f in args.files):
        raise UsageError("give --store OUT (picks the best trained model) or --model PATH; without them only the face "
                         "of an .mp4 is read, by the pretrained FER2013 model")
    predictors = load_predictors(args.store, args.model, args.split)
    results = predict_files(args.files, predictors, same_speaker=args.same_speaker)
    files = [r.to_dict() if isinstance(r, Prediction) else {"file": r[0], "error": r[1]} for r in results]
    failed = sum(1 for f in files if f.get("error") or f.get("emotion") is None)  # "no prediction" is no success
    if args.json:
        print(json.dumps(files, indent=2))
    else:
        _print_predictions({"files": files})
    if failed:
        print(f"emotion: {failed} of {len(files)} file(s) could not be predicted", file=sys.stderr)
    return 1 if failed else 0


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def server_env(host: str, port: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``prefect server start --host HOST --port PORT``, with the UI pointed at this server's API.

    Prefect's UI takes its API address from ``PREFECT_UI_API_URL``, else
    ``PREFECT_API_URL``, else port 4200, whatever port the server listens on.
    Bound to one address, the UI gets ``http://HOST:PORT/api``; bound to every
    address (``0.0.0.0``), a browser on another machine cannot use any one of
    them, so the UI gets ``/api``, relative to the address the browser used.
    An explicit ``PREFECT_UI_API_URL`` is kept.
    """
    env = {**(os.environ if environ is None else environ), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if not env.get("PREFECT_UI_API_URL"):
        env["PREFECT_UI_API_URL"] = "/api" if host in WILDCARD_HOSTS else f"http://{_url_host(host)}:{port}/api"
    return env


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def database_location(env: dict[str, str]) -> str:
    """Where the server keeps its database: the PostgreSQL URL (without its password) or the SQLite file."""
    url = env.get("PREFECT_API_DATABASE_CONNECTION_URL") or env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    if url:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    return f"SQLite in {home / 'prefect.db'}"


def cmd_server(args: argparse.Namespace) -> int:
    env = server_env(args.host, args.port)
    shown = socket.gethostname() if args.host in WILDCARD_HOSTS else _url_host(args.host)
    api = f"http://{shown}:{args.port}/api"
    where = " (listening on every address)" if args.host in WILDCARD_HOSTS else ""
    print(f"Prefect server and UI at http://{shown}:{args.port}{where}; the UI reads its API at "
          f"{env['PREFECT_UI_API_URL']}\n"
          f"database: {database_location(env)}\n"
          f"in other shells: export PREFECT_API_URL={api}", flush=True)
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", args.host, "--port", str(args.port)]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_deploy(args: argparse.Namespace) -> int:
    from deployments import DEFAULT_FILE, build, load_specs

    if not os.environ.get("PREFECT_API_URL"):
        raise UsageError("set PREFECT_API_URL to the Prefect server that schedules the runs (start one with `emotion server`)")
    _flows()
    specs = load_specs(args.file or DEFAULT_FILE)
    deployments = build(specs)
    for s in specs:
        print(f"deployment {s.flow}/{s.name}: cron {s.cron!r} ({s.timezone})", flush=True)
    if args.register_only:
        for d in deployments:
            d.apply()
        print(f"registered {len(deployments)} deployments; run `emotion deploy` to serve them")
        return 0
    from prefect import serve

    serve(*deployments, print_starting_message=True)
    return 0


def _speeds(text: str) -> tuple[float, ...]:
    """``--augment 0.9,1.1`` -> (0.9, 1.1)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"speeds must be comma-separated numbers such as 0.9,1.1, got {text!r}") from None


def _features(args: argparse.Namespace) -> Any:
    """The parameters of ``--features``, with ``--augment``'s speeds where given."""
    params = feature_set(args.features)
    speeds = getattr(args, "augment", None)
    if speeds:
        if not hasattr(params, "speeds"):
            raise UsageError(f"--augment needs --features extended (the {args.features} set has no augmented copies)")
        params = dataclasses.replace(params, speeds=speeds)
    return params


# -- parser ----------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON summary")


def _add_extract_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", default="seed",
                   help=f"feature set: {', '.join(FEATURE_SET_NAMES)} (default: seed, the baseline recipe; "
                        "egemaps and compare need the opensmile extra)")
    _add_augment(p)
    p.add_argument("--dask-address", metavar="ADDR", default=os.environ.get("EMOTION_DASK_ADDRESS"),
                   help="use the Dask scheduler at tcp://HOST:PORT (default: a local cluster)")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--full", action="store_true", help="recompute everything, not only new or changed clips")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any file was rejected (after writing the rest)")
    p.add_argument("--replace-data", action="store_true",
                   help="the store was built from another data root: rebuild it from this one (the old root's rows "
                        "are dropped and counted as removed); without it, another root is refused")


def _add_augment(p: argparse.ArgumentParser) -> None:
    p.add_argument("--augment", nargs="?", const=(0.9, 1.1), type=_speeds, metavar="SPEEDS",
                   help="extended features only: also compute each clip played at these speeds (default 0.9,1.1), "
                        "train on those copies too and average predictions over them")


def _add_frame_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--every", type=int, default=20, help="keep every Nth video frame (default 20)")
    p.add_argument("--frame-size", type=int, default=256, help="side of the stored square gray frames (default 256)")
    p.add_argument("--face-crop", action="store_true",
                   help="crop frames to the face, aligned (eyes level) and tight, with its 468 landmarks (MediaPipe "
                        "face detection and mesh); the fer, fused and landmarks models always use face crops")
    p.add_argument("--face-detector", choices=("mesh", "haar"), default="mesh",
                   help="face front end: mesh (default; aligned crops and landmarks) or haar (the first release's "
                        "square crops around OpenCV's Haar box, 0.25 margin, no landmarks)")


def _add_train_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default=DEFAULT_SPLIT, help=f"actor split (default: {DEFAULT_SPLIT})")
    p.add_argument("--model", action="append", metavar="NAME",
                   help=f"model(s) to train: audio {', '.join(MODELS)}, video {', '.join(NN_MODELS)}, "
                        f"audio-visual {', '.join(FUSION_MODELS)} "
                        f"(repeat or comma-separate; default: {','.join(DEFAULT_MODELS)} for train, lr,svc with "
                        "--features extended or compare, melcnn with "
                        "--features logmel; those and every video and fused model for run)")
    p.add_argument("--epochs", type=int, help="video models: training epochs in all (default 20 for both)")
    p.add_argument("--n-iter", type=int, default=50, help="randomized-search candidates (default 50)")
    p.add_argument("--cv-folds", type=int, default=3, help="actor-grouped CV folds (default 3)")
    p.add_argument("--no-refine", action="store_true", help="skip the grid search around the best candidate")
    p.add_argument("--seed", type=int, default=0, help="random seed of the search and models (default 0)")
    p.add_argument("--jobs", type=int, help="parallel search processes (default: one per core)")
    p.add_argument("--speaker-norm", action="store_true",
                   help="standardise each actor's features over that actor's own clips (train and test; no labels)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="emotion", description="Emotion recognition pipeline for RAVDESS-style corpora.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic RAVDESS-named corpus")
    p.add_argument("dir")
    p.add_argument("--actors", default="1-8,21-24", help="actors to generate (default 1-8,21-24)")
    p.add_argument("--repetitions", type=int, choices=(1, 2), default=2, help="repetitions per statement (default 2)")
    p.add_argument("--duration", type=float, default=1.5, help="seconds per clip (default 1.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--video", action="store_true",
                   help="also write mp4 clips (modality 01 with speech, 02 video-only) with a drawn face")
    p.add_argument("--workers", type=int, help="processes writing the mp4 clips (default: one per core)")
    p.add_argument("--signal", choices=("full", "split"), default="full",
                   help="full: voice and face each carry the emotion; split: each carries only half of it, so that "
                        "only fusion can tell every emotion (default full)")
    _add_common(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("extract", help="extract features of every clip under DATA into the store OUT")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--modality", choices=("audio", "video", "all"), default="all",
                   help="audio (.wav/.flac and the speech track of .mp4 -> features), video (.mp4 -> frames) "
                        "or all (default)")
    _add_frame_opts(p)
    p.add_argument("--chunk-size", type=int, help="clips per Dask task (default 40 audio, 6 video)")
    _add_extract_opts(p)
    _add_common(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", help="tune, train and evaluate models on the features in OUT")
    p.add_argument("out")
    p.add_argument("--features", default="seed", help=f"feature set: {', '.join(FEATURE_SET_NAMES)} (default seed)")
    _add_augment(p)
    p.add_argument("--force", action="store_true", help="retrain even if an identical run is stored")
    _add_frame_opts(p)
    _add_train_opts(p)
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="leave-one-actor-out evaluation over the training actors of a split")
    p.add_argument("out")
    p.add_argument("--loso", action="store_true", help="leave one training actor out at a time (test actors unused)")
    p.add_argument("--features", default="seed", help=f"feature set: {', '.join(FEATURE_SET_NAMES)} (default seed)")
    _add_augment(p)
    p.add_argument("--fixed-params", action="store_true",
                   help="reuse the hyper-parameters of the stored run (one fit per actor; mildly optimistic) "
                        "instead of tuning inside every fold")
    p.add_argument("--params-from", metavar="SPLIT",
                   help="with --fixed-params: the split whose stored runs give them (default: --split)")
    _add_train_opts(p)
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("run", help="extract, train and evaluate")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--modality", choices=("audio", "video", "all"), default="all",
                   help="audio models, video models, or both (default all: each modality found under DATA)")
    _add_frame_opts(p)
    _add_extract_opts(p)
    _add_train_opts(p)
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="synthesize a corpus, then run the whole pipeline on it")
    p.add_argument("--out", default="emotion-demo", help="folder for the corpus and the store (default ./emotion-demo)")
    p.add_argument("--actors", default="1-8,21-24", help="synthetic actors (default 1-8,21-24)")
    p.add_argument("--modality", choices=("audio", "video", "all"), default="all",
                   help="audio, video or both (default all)")
    _add_frame_opts(p)
    _add_extract_opts(p)
    _add_train_opts(p)
    _add_common(p)
    # a smaller search and fewer epochs than `run`, so that the demo takes minutes
    p.set_defaults(func=cmd_demo, n_iter=10, epochs=14)

    p = sub.add_parser("predict", help="the emotion of .wav, .flac or .mp4 files, from a trained model")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio or video files (any name; RAVDESS names not needed)")
    p.add_argument("--store", metavar="OUT", help="a store with trained runs: its best model for the file's modality")
    p.add_argument("--model", metavar="PATH", help="a run folder, or the model file inside it (overrides --store)")
    p.add_argument("--split", help="the split whose models to use (default: train01-20_test21-24 if trained, "
                                   "else the split trained last)")
    p.add_argument("--same-speaker", action="store_true",
                   help="the files are clips of one speaker: a speaker-normalised model standardises them by their own "
                        "statistics (8 clips or more), not the pooled training statistics")
    _add_common(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("server", help="run a local Prefect server and UI (SQLite; PostgreSQL via settings)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=4200)
    p.set_defaults(func=cmd_server, json=False)

    p = sub.add_parser("deploy", help="register the scheduled deployments and serve them")
    p.add_argument("--file", help="deployments file (default: deployments/deployments.yaml)")
    p.add_argument("--register-only", action="store_true", help="register the deployments and exit, without serving")
    p.set_defaults(func=cmd_deploy, json=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_numbers(args)
        return int(args.func(args))
    except UsageError as exc:
        print(f"emotion: error: {exc}", file=sys.stderr)
        return 2
    except EmotionError as exc:
        print(f"emotion: {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("emotion: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
