"""What the ``emotion`` commands print: readable summaries, or JSON with ``--json``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from emotion.core import jsontext
from emotion.core.names import VIDEO_FEATURE_SETS
from emotion.store.catalog import SPEAKER_NORM_ASSUMES, rank_rows

COUNTS = ("processed", "skipped", "removed", "rejected")


def extract_payload(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Totals over modalities at the top (``processed``, ``skipped``, ``removed``, ``rejected``), details below."""
    total: dict[str, Any] = {k: sum(s[k] for s in summaries.values()) for k in COUNTS}
    total["seconds"] = max((s["seconds"] for s in summaries.values()), default=0.0)
    total["workers"] = sorted({w for s in summaries.values() for w in s["workers"]})
    total["n_workers"] = len(total["workers"])
    total["no_audio"] = sum(s.get("no_audio", 0) for s in summaries.values())
    total["rejects"] = [{**r, "modality": m} for m, s in summaries.items() for r in s["rejects"]]
    total["removed_clips"] = sorted({r for s in summaries.values() for r in s.get("removed_clips", [])})
    total["no_audio_clips"] = [r for s in summaries.values() for r in s.get("no_audio_clips", [])]
    total["band_limited"] = [r for s in summaries.values() for r in s.get("band_limited", [])]
    total["modalities"] = {m: {k: v for k, v in s.items()
                               if k not in ("rejects", "removed_clips", "no_audio_clips", "band_limited")}
                           for m, s in summaries.items()}
    return total


def _count(n: int, noun: str) -> str:
    """``1 chunk``, ``2 chunks``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _no_audio_kinds(n: int, clips: list[dict[str, Any]] | None) -> str:
    """What the ``n`` audio clips without audio are: `` (video-only)``, or `` (2 video-only, 1 listed below)`` where a
    clip named as carrying speech has no usable track (a video-only clip, modality 02, has none by design)."""
    if not n:
        return ""
    by_name = n if clips is None else sum(r.get("stage") == "id" for r in clips)
    return " (video-only)" if by_name >= n else f" ({by_name} video-only, {n - by_name} listed below)"


def print_extract(s: dict[str, Any]) -> None:
    for m, d in s["modalities"].items():
        what = "features" if m == "audio" else "frames"
        absent = f", {d['no_audio']} without audio{_no_audio_kinds(d['no_audio'], s.get('no_audio_clips'))}" \
            if m == "audio" else ""
        print(f"extract {m}: {d['processed']} processed, {d['skipped']} skipped, {d['removed']} removed, "
              f"{d['rejected']} rejected{absent} in {d['seconds']:.1f} s ({what} {d['feature_set']})")
        if d.get("n_workers"):
            print(f"  on {_count(d['n_workers'], 'Dask worker')}, up to {_count(d.get('max_in_flight', 0), 'chunk')} "
                  f"in flight ({_count(d.get('cluster_threads', 0), 'worker thread')})")
        if d.get("merged_parts"):
            print(f"  merged {d['merged_parts']} small Parquet parts: {d['parts']} part(s) stored")
        faces = d.get("faces") or {}
        if faces.get("error"):
            print(f"  faces: {faces['error']}")
        elif faces:
            print(f"  faces: found in {faces['frames_with_face']} of {faces['frames']} kept frames "
                  f"({100 * faces['face_rate']:.1f} %); {len(faces['clips_without_face'])} clip(s) without any face; "
                  f"landmark features {faces['feature_set']}")
            for p in faces["clips_without_face"][:10]:
                print(f"    no face in any kept frame of {p}")
            # each clip's crops follow one face: say which clips to look at
            _clips_to_check(faces.get("clips_with_several_faces") or [],
                            "show more than one face in a kept frame; their crops follow one face at a time (check "
                            "that it is the speaker's)", "more than one face in")
            # the face followed was lost and another taken: the crops may show someone else
            _clips_to_check(faces.get("clips_track_switched") or [],
                            "lose the face they follow in a kept frame and go on with another; check their crops, "
                            "which may show someone other than the speaker from there on", "track switched person in")
            uncounted, unrecorded = faces.get("n_clips_faces_unknown") or 0, faces.get("n_clips_track_unknown") or 0
            if uncounted and uncounted == unrecorded:  # a store from before both: one line, one advice
                print(f"  faces: {uncounted} clip(s) were stored without the number of faces in their frames or a "
                      "record of whether their face track switched person (`emotion extract --full` adds both)")
            else:
                if uncounted:
                    print(f"  faces: {uncounted} clip(s) were stored without the number of faces in their frames "
                          "(`emotion extract --full` counts them)")
                if unrecorded:
                    print(f"  faces: {unrecorded} clip(s) were stored without a record of whether their face track "
                          "switched person (`emotion extract --full` records it)")
    # the clips gone from the data root (both modalities' rows of an mp4: named once), as the rejects below
    rejected = {r["path"] for r in s["rejects"]}  # their rows dropped too, but still there: their reject line says why
    gone = [p for p in s.get("removed_clips") or [] if p not in rejected]
    for path in gone[:10]:
        print(f"  removed {path}: no longer under the data root, its rows dropped")
    if len(gone) > 10:
        print(f"  ... and {len(gone) - 10} more removed (--json lists them)")
    # a file both modalities refuse for the same reason (an empty mp4) is named once; --json keeps one per modality
    shown = list(dict.fromkeys((r["path"], r["reason"]) for r in s["rejects"]))
    for path, reason in shown[:20]:
        print(f"  rejected {path}: {reason}")
    if len(shown) > 20:
        print(f"  ... and {len(shown) - 20} more rejected (--json lists them all; so does the store's "
              "rejects/<modality>.parquet)")
    # video-only clips (modality 02) have no audio by design: counted above, not listed; an mp4 that should carry
    # speech but has no usable track is named
    odd = [r for r in s["no_audio_clips"] if r.get("stage") != "id"]
    for r in odd[:10]:
        print(f"  no audio features for {r['path']}: {r['reason']}")
    if len(odd) > 10:
        print(f"  ... and {len(odd) - 10} more clips without audio (--json lists them all; so does the store's "
              "manifest/no_audio.parquet)")
    band = s.get("band_limited", [])
    if band:  # kept (a corpus may be narrowband throughout), and told in one line: --json lists every clip
        rates = sorted({b["sample_rate"] for b in band})
        target = max(b.get("features_rate", 0) for b in band)
        print(f"  note: {len(band)} clip(s) were recorded at {', '.join(f'{r} Hz' for r in rates)}, below the "
              f"{target} Hz their features are computed at: nothing above {rates[-1] // 2} Hz, unlike full-band "
              f"recordings (e.g. {band[0]['path']}; --json lists them)")


def shown_name(r: dict[str, Any], t: dict[str, Any]) -> str:
    """A training table row's model as shown: ``lr/landmarks`` (lr on the face's geometry), and an audio model of
    another feature set, augmentation or normalisation than this call's (a selected run trained earlier) with its
    own, e.g. ``lr/extended``, ``lr/extended+aug``, ``lr/seed+norm`` or ``lr/seed-norm`` (without): two rows never
    read just ``lr``."""
    features = r.get("features")
    if features == "landmarks":
        return f"{r['model']}/landmarks"
    if r.get("modality", "audio") != "audio" or not t.get("features") or not features:
        return str(r["model"])
    other_norm = bool(r.get("speaker_norm")) != bool(t.get("speaker_norm"))
    # this call's augmentation, from its own audio rows (None: it trained none, so nothing to tell apart)
    augmented = next((bool(x.get("augment")) for x in t.get("models", []) if x.get("modality", "audio") == "audio"
                      and x.get("features") == t["features"]), None)
    other_aug = augmented is not None and bool(r.get("augment")) != augmented
    if features == t["features"] and not other_norm and not other_aug:
        return str(r["model"])
    return (f"{r['model']}/{features}" + ("+aug" if r.get("augment") else "")
            + (("+norm" if r.get("speaker_norm") else "-norm") if other_norm else ""))


def retrain_options(r: dict[str, Any]) -> str:
    """The ``emotion train`` options that train ``r``'s run again (its model, feature set, augmentation and
    normalisation; the split and the search are the user's own)."""
    opts = f"--model {r['model']}"
    if r.get("feature_set") or r.get("features") == "landmarks":
        opts += f" --features {r['features']}"
    if r.get("augment"):
        opts += f" --augment {','.join(f'{float(v):g}' for v in r['augment'])}"
    if r.get("speaker_norm") and r.get("modality", "audio") == "audio":
        opts += " --speaker-norm"
    return opts


def print_train(t: dict[str, Any]) -> None:
    norm = ", speaker-normalised" if t.get("speaker_norm") else ""
    kind = "video" if t.get("features") in VIDEO_FEATURE_SETS else "audio"  # landmarks: the face's, as its rows say
    audio = f" ({kind} features {t['features']}{norm})" if t.get("features") else ""
    used = t.get("split_used")
    present = f" (actors in the data: {used})" if used and used != t["split"] else ""
    # ranked as rank_rows ranks them (validation, as `emotion predict` chooses), not by the test accuracy shown
    print(f"split {t['split']}{present}{audio}: models ranked by validation accuracy (never by the test actors), "
          "scored per clip on the test actors")
    print(f"  {'model':<12} {'input':<6} {'accuracy':>8} {'macro-F1':>8} {'UAR':>6} {'validation acc':>15} {'train':>6} "
          f"{'test':>5}  run")
    earlier = t.get("selected_earlier") or []  # the selected run of a modality trained here, trained before
    rows = rank_rows([*t["models"], *earlier]) if earlier else t["models"]
    for r in rows:
        cv, sd = r.get("cv_accuracy"), r.get("cv_std")
        cv = "—" if cv is None or cv != cv else f"{cv:.3f}±{sd:.3f}" if sd and sd == sd else f"{cv:.3f}"  # NaN: none
        name = shown_name(r, t)
        how = (" (selected, trained earlier on older data)" if r.get("older_data") else
               " (selected, trained earlier)" if r.get("trained_earlier") else " (reused)" if r.get("reused") else "")
        print(f"{'*' if r.get('selected') else ' '} {name:<12} {r.get('modality', 'audio'):<6} {r['accuracy']:>8.3f} "
              f"{r['macro_f1']:>8.3f} {r['uar']:>6.3f} {cv:>15} {r['n_train']:>6} {r['n_test']:>5}  {r['run_dir']}{how}")
    if any(r.get("selected") for r in rows):
        print("  *: selected, the model of its input `emotion predict` uses (the best validation accuracy among the "
              "split's runs)")
    print("  (validation: actor-grouped CV for audio, fused and landmark models, held-out training actors for cnn "
          "and fer; —: none recorded)")
    for r in earlier:
        if r.get("older_data"):
            name = shown_name(r, t)
            again = retrain_options(r)
            print(f"  note: the selected {r.get('modality', 'audio')} model {name} was not trained on the "
                  f"store's current clips of this split; `emotion predict` uses it as it is until it is trained again "
                  f"(`emotion train` with {again}, and the search settings it had)")
    for r in t["models"]:
        if r.get("n_test_clips_without_face"):
            print(f"  {r['model']}: no face in {r['n_test_clips_without_face']} of its {r['n_test']} test clips "
                  "(no prediction: counted as wrong)")
    if t.get("recipe"):
        print_recipe(t["recipe"], [{**r, "model": shown_name(r, t)} for r in rows])  # in the order of the table
    synthetic = [r["model"] for r in t["models"] if r.get("data_origin") == "synthetic"]
    if synthetic:
        print(f"  {'all' if len(synthetic) == len(t['models']) else ', '.join(synthetic)}: trained on synthetic data, "
              "not meaningful for real recordings")
    print(f"  summary: {t['summary']}")
    if t.get("report"):
        print(f"  report:  {t['report']}")


_before_output: list[Callable[[], None]] = []


def before_output(fn: Callable[[], None]) -> None:
    """Call ``fn`` once before the summary is printed (the progress display ends, so the summary stands alone)."""
    _before_output.append(fn)


def forget(fn: Callable[[], None]) -> None:
    """No longer call ``fn`` (the command ended without a summary)."""
    if fn in _before_output:
        _before_output.remove(fn)


def emit(args: argparse.Namespace, payload: dict[str, Any], printer: Any) -> None:
    while _before_output:
        _before_output.pop()()
    if args.json:
        print(jsontext.dumps(payload, indent=2, default=str))
    else:
        printer(payload)


def print_run_start(r: dict[str, Any]) -> None:
    """The part of ``run``'s summary before the training's: the extraction and the notes. Also what a run whose
    training failed printed before its error (what it had done: :func:`emotion.core.errors.done_before`)."""
    if r.get("extract"):
        print_extract(r["extract"])
    for n in r.get("notes", []):
        print(f"note: {n}")


def print_run(r: dict[str, Any]) -> None:
    print_run_start(r)
    if r["train"]["models"]:
        print_train(r["train"])


def print_run_recipe(r: dict[str, Any]) -> None:
    """``run``'s summary with the recipe that ran and what its accuracy assumes (in the training table's lines)."""
    rec = r.get("recipe")
    if rec and r["train"]["models"] and r["train"].get("features"):  # audio or fused models ran
        r = {**r, "train": {**r["train"], "recipe": rec}}
    print_run(r)


def print_recipe(rec: dict[str, Any], models: list[dict[str, Any]]) -> None:
    """The recipe that ran and, with speaker normalisation, what its accuracy assumes beside the accuracy of each of
    ``models`` (that recorded one) one clip at a time."""
    print(f"  recipe:  {rec['description']}")
    if rec.get("assumes"):
        single = [f"{m['model']} {v:.3f}" for m in models
                  if isinstance(v := m.get("accuracy_single_clip"), (int, float)) and v == v]  # NaN: none
        print(f"  note:    {rec['assumes']}" + (f"; accuracy one clip at a time: {', '.join(single)}" if single else ""))


def print_loso(t: dict[str, Any]) -> None:
    norm = ", speaker-normalised" if t["speaker_norm"] else ""
    copies = f" + copies at {', '.join(f'{s:g}x' for s in t['augment'])}" if t.get("augment") else ""
    print(f"leave-one-actor-out over the training actors of {t['split']} (features {t['features']}{copies}{norm}; "
          f"hyper-parameters {t['mode']}):")
    for r in t["models"]:
        per = " ".join(f"{a}:{v:.2f}" for a, v in r["per_actor"].items())
        print(f"  {r['model']:<8} mean {r['mean']:.3f}  std {r['std']:.3f}  min {r['min']:.3f}  max {r['max']:.3f}"
              f"  ({r['n_actors']} actors, {r['seconds']:.0f} s)")
        print(f"           per actor: {per}")
    if t["mode"] == "fixed":  # whose actors chose them (another split's run with --params-from)
        for note in dict.fromkeys(r.get("note") or "" for r in t["models"]):
            print(f"  note: {note or 'fixed hyper-parameters come from the stored runs: mildly optimistic'}")
    if t["speaker_norm"]:  # each held-out actor is a test speaker, normalised over their own clips
        print(f"  note: {SPEAKER_NORM_ASSUMES}; here each held-out actor's clips were normalised together (a single "
              "clip's accuracy is recorded by `emotion train --speaker-norm`, not by leave-one-actor-out)")
    print(f"  summary: {t['summary']}")


def print_predictions(payload: dict[str, Any]) -> None:
    for r in payload["files"]:
        if r.get("error"):
            print(f"{r['file']}: error: {r['error']}")
            continue
        label = f"  (file name says {r['label']})" if r.get("label") else ""
        origin = f"  [{r['origin_warning']}]" if r.get("origin_warning") else ""  # beside every answer
        if r["emotion"] is None:
            print(f"{r['file']}: no prediction{label}{origin}")
        else:
            print(f"{r['file']}: {r['emotion']} ({r['probabilities'][r['emotion']]:.2f}) from "
                  f"{' + '.join(r['modalities_used'])}{label}{origin}")
            print("  " + "  ".join(f"{k} {v:.2f}" for k, v in r["probabilities"].items()))
            print(f"  model: {r['model']}")
        for note in r["notes"]:
            print(f"  {note}")
        if r.get("timeline"):
            same = r.get("timeline_model") == r.get("model")
            # the model is named once: on the "model:" line above when it gave the outcome (its description cut here)
            who = "" if same else f" of the face model {str(r.get('timeline_model')).split(' (')[0]}"
            print(f"  timeline{who} (time, top two emotions):")
            for t in r["timeline"]:
                print(f"    {t['time']:6.2f} s  frame {t['frame_index']:>4}  "
                      + (", ".join(f"{x['emotion']} {x['probability']:.2f}" for x in t["top"])
                         if t.get("face", True) else "no face"))
            if not same:  # (the same model's outcome is the one above)
                own = r.get("timeline_outcome") or {}
                kind = ("fused" if "/fusion-" in str(r.get("model")) else "voice" if r["modalities_used"] == ["audio"]
                        else "face")
                print(f"  clip outcome of this face model: {own.get('emotion')} ({own.get('probability', 0):.2f}); "
                      f"the outcome above ({r['emotion']}) is the {kind} model's")


def _clips_to_check(clips: list[str], what: str, each: str) -> None:
    """``faces: N clip(s) <what>``, then the first ten clips, each as ``<each> <clip>``; nothing for no clip."""
    if clips:
        print(f"  faces: {len(clips)} clip(s) {what}")
        for p in clips[:10]:
            print(f"    {each} {p}")
        if len(clips) > 10:
            print(f"    ... and {len(clips) - 10} more (--json lists them)")
