"""Named retrieval benchmarks for `bind eval`, read in their release layouts, with the
ImageBind paper's figures (arXiv 2305.05665, Tables 2 and 3, imagebind_huge) beside what is
measured: AudioCaps and Clotho text->audio, MSR-VTT 1k-A text->video (and with each video's
sound), and AudioSet's mAP, its 527 classes as queries against the clips.

Clips downloaded from YouTube (AudioCaps, AudioSet) are found anywhere below the folder under
the names download tools give them (`presets.youtube_clip`); a listed clip not found is left
out and counted in the protocol, which then says the figure is not comparable.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from bindcli.errors import UsageError
from bindcli.eval import tables
from bindcli.eval.presets import files_by_stem, found_of, paper_templates, release_file, youtube_clip
from bindcli.eval.retrieval import Retrieval, Side
from bindcli.modality import Kind

#: the paper's figures (%): direction -> metric
PAPER = {
    "audiocaps": {"text_to_audio": {"r1": 9.3, "r10": 42.3}},
    "clotho": {"text_to_audio": {"r1": 6.0, "r10": 28.4}},
    "msrvtt-1k-a": {"text_to_video": {"r1": 36.1}, "text_to_video+audio": {"r1": 36.8}},
    "audioset": {"text_to_audio": {"map": 17.6}},
}

#: Clotho's captions per clip
CLOTHO_CAPTIONS = 5


def _first(root: Path, name: str, what: str) -> Path:
    """The release file `name` in `root` or anywhere below it."""
    found = root / name if (root / name).is_file() else next(iter(sorted(root.rglob(name))), None)
    if found is None:
        raise UsageError(f"{root}: no {name} (expected {what})")
    return found


def _captions(
    name: str, captions: list[tuple[str, Path | None]], listed: int, what: str, target: Side, protocol: str,
    sound: bool = False,
) -> Retrieval:
    """Each caption one query, right for its clip; clips not found (None) leave their
    captions out. `target` is the target side without its items."""
    clips: dict[Path, int] = {}
    queries, relevant = [], []
    for caption, clip in captions:
        if clip is not None:
            queries.append(caption)
            relevant.append((clips.setdefault(clip, len(clips)),))
    if not clips:
        raise UsageError(f"{name}: none of the {listed} {what} was found")
    return Retrieval(
        name, Side("text", tuple(queries), text=True), Side(target.name, tuple(str(c) for c in clips), kind=target.kind),
        tuple(relevant), PAPER[name], f"{protocol}; {found_of(len(clips), listed, what)}",
        comparable=len(clips) == listed, sound=sound,
    )


def audiocaps(root: Path) -> Retrieval:
    """AudioCaps' test split as its repository lists it (`test.csv`: audiocap_id, youtube_id,
    start_time, caption), the clips anywhere below `root`: every caption a query (five per
    clip), each clip's sound ranked."""
    table = _first(root, "test.csv", "AudioCaps' dataset/test.csv and the clips below it")
    files = files_by_stem(root)
    captions, seen = [], set()
    with tables.rows(table) as rows, release_file(table, "AudioCaps' test.csv"):
        for r in rows:
            ytid, start = r["youtube_id"], r["start_time"]
            seen.add(ytid)
            clip = youtube_clip(files, ytid, start) or files.get(r["audiocap_id"])
            captions.append((r["caption"].strip(), clip))
    return _captions(
        "audiocaps", captions, len(seen), "clips", Side("audio", (), kind=Kind.AUDIO),
        "AudioCaps test split (test.csv), every caption a query against the clips' sound",
    )


def clotho(root: Path) -> Retrieval:
    """Clotho's evaluation split as released (`clotho_captions_evaluation.csv`: file_name,
    caption_1..caption_5; the clips in `evaluation/`): five captions a clip, each a query."""
    table = _first(root, "clotho_captions_evaluation.csv", "Clotho's captions file and evaluation/ clips")
    files = files_by_stem(root)
    captions, listed = [], 0
    with tables.rows(table) as rows, release_file(table, "Clotho's clotho_captions_evaluation.csv"):
        for r in rows:
            listed += 1
            clip = files.get(Path(r["file_name"]).stem)
            captions += [(r[f"caption_{k}"].strip(), clip) for k in range(1, CLOTHO_CAPTIONS + 1)]
    return _captions(
        "clotho", captions, listed, "clips", Side("audio", (), kind=Kind.AUDIO),
        f"Clotho evaluation split, {CLOTHO_CAPTIONS} captions a clip, each a query",
    )


def msrvtt(root: Path) -> Retrieval:
    """MSR-VTT's 1k-A test split (JSFusion's 1000 videos, one caption each) as CLIP4Clip's
    `msrvtt_data` lists it (`MSRVTT_JSFUSION_test.csv`: key, vid_key, video_id, sentence),
    the videos (`video7020.mp4`) anywhere below `root`; each video also scored with its sound
    (the sum of the two unit vectors), the paper's "with audio"."""
    table = _first(root, "MSRVTT_JSFUSION_test.csv", "CLIP4Clip's msrvtt_data/MSRVTT_JSFUSION_test.csv and the videos")
    files = files_by_stem(root)
    with tables.rows(table) as rows, release_file(table, "MSRVTT_JSFUSION_test.csv"):
        captions = [(r["sentence"].strip(), files.get(r["video_id"])) for r in rows]
    return _captions(
        "msrvtt-1k-a", captions, len(captions), "videos", Side("video", (), kind=Kind.VIDEO),
        "MSR-VTT 1k-A (JSFusion's test videos, one caption each); bind's video sampling, upstream's "
        "(5 clips of 2 s, first and last frame of each); with audio: each video's frames and sound, "
        "unit vectors summed and normalised", sound=True,
    )


def audioset(root: Path) -> Retrieval:
    """AudioSet's evaluation segments as released (`eval_segments.csv`, `class_labels_indices.csv`),
    the clips anywhere below `root`: each of the 527 classes a query (CLIP's 80 templates,
    as the paper's zero-shot classification), its clips the right targets; mAP over classes."""
    segments = _first(root, "eval_segments.csv", "AudioSet's eval_segments.csv, class_labels_indices.csv and the clips")
    labels = _first(root, "class_labels_indices.csv", "AudioSet's class_labels_indices.csv")
    with tables.rows(labels) as rows, release_file(labels, "AudioSet's class_labels_indices.csv"):
        names = {r["mid"]: r["display_name"].strip() for r in rows}
    files = files_by_stem(root)
    clips: list[str] = []
    positives: dict[str, list[int]] = {mid: [] for mid in names}
    listed = 0
    with release_file(segments, "AudioSet's eval_segments.csv"), open(segments, newline="", encoding="utf-8") as f:
        for r in csv.reader((line for line in f if not line.startswith("#")), skipinitialspace=True):
            if not r:
                continue
            listed += 1
            clip = youtube_clip(files, r[0], r[1])
            if clip is None:
                continue
            for mid in r[3].split(","):
                if mid not in positives:
                    raise UsageError(f"{segments}: the label {mid!r} of {r[0]} is not in {labels.name}")
                positives[mid].append(len(clips))
            clips.append(str(clip))
    if not clips:
        raise UsageError(f"audioset: none of the {listed} segments was found below {root}")
    return Retrieval(
        "audioset", Side("text", tuple(names.values()), text=True, templates=paper_templates()),
        Side("audio", tuple(clips), kind=Kind.AUDIO), tuple(tuple(positives[mid]) for mid in names),
        PAPER["audioset"],
        "AudioSet eval segments, each class a query of CLIP's 80 templates against the clips' sound, "
        f"mAP over the classes with a clip; {found_of(len(clips), listed, 'segments')}",
        comparable=len(clips) == listed,
    )


RETRIEVAL_PRESETS: dict[str, Callable[[Path], Retrieval]] = {
    "audiocaps": audiocaps, "clotho": clotho, "msrvtt-1k-a": msrvtt, "audioset": audioset,
}


def read_retrieval_preset(name: str, root: str | Path) -> Retrieval:
    """The named retrieval benchmark at `root`."""
    try:
        reader = RETRIEVAL_PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown retrieval preset {name!r}; known: {', '.join(RETRIEVAL_PRESETS)}") from None
    if not Path(root).is_dir():
        raise UsageError(f"{root}: no such folder")
    return reader(Path(root))
