"""`bind eval --task retrieval` and `bindcli.eval.retrieval`: the figures against a plain
numpy computation on the full similarity matrix of `bind embed` vectors, the block-wise
ranking, pairs tables, and the retrieval presets on miniature copies of their release layouts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bindcli.eval import retrieval
from bindcli.vectors import normalise
from cli_support import bind, embedded, jsonl, media, write_av

IMAGES = {"dog": "dog_image.jpg", "car": "car_image.jpg", "bird": "bird_image.jpg"}
SOUNDS = {"dog": "dog_audio.wav", "car": "car_audio.wav", "bird": "bird_audio.wav"}


def reference(queries: np.ndarray, targets: np.ndarray, relevant: list[list[int]]) -> dict[str, float]:
    """R@K, ranks and mAP from the whole matrix at once, each row fully sorted."""
    first, precision = [], []
    for row, rights in zip(queries @ targets.T, relevant):
        positions = np.flatnonzero(np.isin(np.argsort(-row), rights)) + 1
        first.append(positions[0])
        precision.append(np.mean(np.arange(1, len(positions) + 1) / positions))
    first = np.array(first)
    return {
        "n": len(first), "r1": np.mean(first <= 1), "r5": np.mean(first <= 5), "r10": np.mean(first <= 10),
        "median_rank": np.median(first), "mean_rank": np.mean(first), "map": np.mean(precision),
    }


def both_ways(queries, targets, relevant) -> tuple[dict, dict]:
    back = [[q for q, rights in enumerate(relevant) if t in rights] for t in range(len(targets))]
    return reference(queries, targets, relevant), reference(targets, queries, back)


def assert_figures(measured: dict, expected: dict) -> None:
    assert measured == {k: pytest.approx(v) for k, v in expected.items()}


def test_block_wise_ranks_equal_the_whole_matrix(monkeypatch):
    rng = np.random.default_rng(0)
    queries = normalise(rng.normal(size=(300, 16)))
    targets = normalise(rng.normal(size=(120, 16)))
    relevant = [sorted(set(rng.integers(0, 120, rng.integers(1, 5)).tolist())) for _ in range(300)]
    monkeypatch.setattr(retrieval, "BLOCK_SCORES", 1000)  # 8 queries a block
    ranks = retrieval.rank(queries, targets, relevant)
    assert_figures(ranks.figures(), reference(queries, targets, relevant))
    assert len(ranks.misses) == int(np.sum(ranks.first > 1))
    query, best, scores = ranks.misses[0]
    row = queries[query] @ targets.T
    assert best.tolist() == np.argsort(-row)[:5].tolist() and scores == pytest.approx(row[best])


def test_ties_count_for_the_query():
    """A right target level with wrong ones ranks first; two right ones level share the top."""
    targets = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    ranks = retrieval.rank(np.array([[1.0, 0.0]], np.float32), targets, [[1]])
    assert ranks.first.tolist() == [1] and ranks.precision.tolist() == [1.0]
    both = retrieval.rank(np.array([[1.0, 0.0]], np.float32), targets, [[0, 1]])
    assert both.precision.tolist() == [1.0]


@pytest.fixture
def captions(tmp_path):
    """A captions table: two captions of the dog picture, one a sound; the bird has two files."""
    root = tmp_path / "pairs"
    root.mkdir()
    for name in [*IMAGES.values(), *SOUNDS.values()]:
        shutil.copy(media(name), root / name)
    rows = [("a dog", "dog_image.jpg"), ("a puppy", "dog_image.jpg"), ("a car", "car_image.jpg"),
            ("a bird", "bird_image.jpg"), ("a bird", "bird_audio.wav"), ("a barking dog", "dog_audio.wav")]
    table = root / "captions.csv"
    table.write_text("query_text,target\n" + "".join(f"{q},{t}\n" for q, t in rows))
    return table, rows


def test_a_pairs_table_gives_the_figures_numpy_computes(captions):
    table, rows = captions
    result = bind("eval", "--task", "retrieval", table, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    queries = list(dict.fromkeys(q for q, _ in rows))
    targets = list(dict.fromkeys(t for _, t in rows))
    relevant = [[targets.index(t) for q2, t in rows if q2 == q] for q in queries]
    Q = np.stack(embedded(*sum((["-t", q] for q in queries), [])))
    T = np.stack(embedded(*(table.parent / t for t in targets)))
    forward, backward = both_ways(Q, T, relevant)
    assert (report["queries"], report["targets"], report["failed"]) == (5, 5, 0)
    assert_figures(report["directions"]["query_to_target"], forward)
    assert_figures(report["directions"]["target_to_query"], backward)
    tsv = table.with_suffix(".tsv")
    tsv.write_text("target\tquery_text\n" + "".join(f"{t}\t{q}\n" for q, t in rows))
    again = json.loads(bind("eval", "--task", "retrieval", tsv, "-f", "json").stdout)
    assert again["directions"] == report["directions"]


def test_errors_lists_each_query_whose_first_hit_is_wrong(captions, tmp_path):
    table, _ = captions
    out = tmp_path / "missed.jsonl"
    report = json.loads(bind("eval", "--task", "retrieval", table, "--errors", out, "-f", "json").stdout)
    missed = jsonl(out.read_text())
    for direction, figures in report["directions"].items():
        mine = [m for m in missed if m["direction"] == direction]
        assert len(mine) == round(figures["n"] * (1 - figures["r1"]))
        for m in mine:
            rights = [t["right"] for t in m["top"]]
            assert not rights[0] and m["rank"] > 1
            assert m["rank"] == rights.index(True) + 1 if True in rights else m["rank"] > len(rights)
            assert [t["score"] for t in m["top"]] == sorted((t["score"] for t in m["top"]), reverse=True)


def test_a_target_that_fails_is_named_and_left_out(captions):
    table, rows = captions
    (table.parent / "broken.wav").write_text("not audio")
    with open(table, "a") as f:
        f.write("static,broken.wav\n")
    result = bind("eval", "--task", "retrieval", table, "-f", "json")
    assert result.exit_code == 1 and "broken.wav" in result.stderr
    report = json.loads(result.stdout)
    assert (report["queries"], report["targets"], report["failed"]) == (5, 5, 1)


def test_the_table_shows_each_direction(captions):
    table, _ = captions
    text = " ".join(bind("eval", "--task", "retrieval", table, "-f", "table").stdout.split())
    assert "query → target" in text and "target → query" in text and "R@10" in text


@pytest.mark.parametrize("args, says", [
    (["--per-class", "2"], "--per-class is for classification"),
    (["--template", "{}"], "--template is for classification"),
])
def test_classification_options_are_refused(captions, args, says):
    table, _ = captions
    result = bind("eval", "--task", "retrieval", table, *args)
    assert result.exit_code == 2 and says in " ".join(result.stderr.replace("│", " ").split())


@pytest.mark.parametrize("header, says", [
    ("query,target_text,target\n", "both of the columns target"),
    ("path,label\n", "neither of the columns query"),
])
def test_a_table_without_its_columns_is_one_usage_error(tmp_path, header, says):
    table = tmp_path / "pairs.csv"
    table.write_text(header + "a,b,c\n")
    result = bind("eval", "--task", "retrieval", table)
    assert result.exit_code == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_preset_of_the_other_task_is_refused(tmp_path):
    result = bind("eval", "--preset", "audiocaps", "--task", "classification", tmp_path)
    assert result.exit_code == 2 and "not a classification benchmark" in result.stderr.replace("\n", " ")
    unknown = bind("eval", "--preset", "nope", tmp_path)
    assert unknown.exit_code == 2 and "audiocaps" in unknown.stderr and "esc50" in unknown.stderr


# --- presets, on miniature release layouts ----------------------------------------------------


def youtube_copy(root, names: dict[str, str]) -> dict[str, str]:
    """Sound files downloaded below `root/audio` under three tools' naming schemes; returns
    each YouTube id's file."""
    (root / "audio").mkdir(parents=True)
    files = {}
    for n, (ytid, sound) in enumerate(names.items()):
        name = [f"{ytid}.wav", f"Y{ytid}.wav", f"{ytid}_30.wav"][n % 3]
        shutil.copy(media(sound), root / "audio" / name)
        files[ytid] = str(root / "audio" / name)
    return files


AUDIOCAPS = {"dog-bark_01": "dog_audio.wav", "car-engine1": "car_audio.wav", "bird_chirp1": "bird_audio.wav"}
CAPTIONS = {
    "dog-bark_01": ["a dog barks", "barking nearby"], "car-engine1": ["an engine revs", "a car passes"],
    "bird_chirp1": ["birds chirp", "a bird sings"],
}


def captions_reference(files: list[str], captions: list[list[str]], kind: str = "audio") -> tuple[dict, dict]:
    """Each caption a query right for its file, from `bind embed` vectors."""
    queries = [c for cs in captions for c in cs]
    relevant = [[n] for n, cs in enumerate(captions) for _ in cs]
    Q = np.stack(embedded(*sum((["-t", q] for q in queries), [])))
    T = np.stack(embedded(*files, "--as", kind))
    return both_ways(Q, T, relevant)


def test_audiocaps_test_split_with_the_papers_figures(tmp_path):
    root = tmp_path / "audiocaps"
    files = youtube_copy(root, AUDIOCAPS)
    rows = [f"{100 + n},{ytid},30,\"{c}\"" for n, (ytid, cs) in enumerate(CAPTIONS.items()) for c in cs]
    (root / "dataset").mkdir()
    (root / "dataset" / "test.csv").write_text("audiocap_id,youtube_id,start_time,caption\n" + "\n".join(rows) + "\n")
    result = bind("eval", "--preset", "audiocaps", root, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    forward, backward = captions_reference([files[y] for y in CAPTIONS], list(CAPTIONS.values()))
    assert_figures(report["directions"]["text_to_audio"], forward)
    assert_figures(report["directions"]["audio_to_text"], backward)
    assert report["paper"] == {"text_to_audio": {"r1": pytest.approx(0.093), "r10": pytest.approx(0.423)}}
    assert report["comparable"] is True and "3 of 3 clips found" in report["protocol"]
    table = " ".join(bind("eval", "--preset", "audiocaps", root, "-f", "table").stdout.split())
    assert "9.3" in table and "42.3" in table and "paper" in table and "not comparable" not in table
    with open(root / "dataset" / "test.csv", "a") as f:
        f.write("200,missing_id1,0,a clip no longer on YouTube\n")
    partial = json.loads(bind("eval", "--preset", "audiocaps", root, "-f", "json").stdout)
    assert partial["comparable"] is False and "3 of 4 clips found" in partial["protocol"]
    assert partial["directions"] == report["directions"]
    table = " ".join(bind("eval", "--preset", "audiocaps", root, "-f", "table").stdout.split())
    assert "paper (not comparable)" in table


def test_clotho_evaluation_split_five_captions_a_clip(tmp_path):
    root = tmp_path / "clotho"
    (root / "evaluation").mkdir(parents=True)
    captions = {}
    for name in SOUNDS.values():
        shutil.copy(media(name), root / "evaluation" / name)
        captions[name] = [f"{name.split('_')[0]} sound number {k}" for k in range(1, 6)]
    (root / "clotho_captions_evaluation.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        + "".join(",".join([name, *cs]) + "\n" for name, cs in captions.items())
    )
    report = json.loads(bind("eval", "--preset", "clotho", root, "-f", "json").stdout)
    forward, backward = captions_reference([str(root / "evaluation" / n) for n in captions], list(captions.values()))
    assert (report["queries"], report["targets"]) == (15, 3)
    assert_figures(report["directions"]["text_to_audio"], forward)
    assert_figures(report["directions"]["audio_to_text"], backward)
    assert report["paper"]["text_to_audio"] == {"r1": pytest.approx(0.06), "r10": pytest.approx(0.284)}


def tone(freq: float) -> np.ndarray:
    t = np.arange(int(2.5 * 16000)) / 16000
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_msrvtt_1k_a_video_alone_and_with_its_sound(tmp_path):
    root = tmp_path / "msrvtt"
    (root / "videos" / "all").mkdir(parents=True)
    (root / "msrvtt_data").mkdir()
    sentences = {"video7020": "a grey screen", "video7021": "a lighter screen", "video7022": "a tone plays"}
    for n, vid in enumerate(sentences):
        write_av(root / "videos" / "all" / f"{vid}.mp4", "aac", 16000, tone(300 + 400 * n), video=True, shade=80 * n)
    (root / "msrvtt_data" / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\n"
        + "".join(f"ret{n},msr{n},{vid},{s}\n" for n, (vid, s) in enumerate(sentences.items()))
    )
    result = bind("eval", "--preset", "msrvtt-1k-a", root, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    videos = [str(root / "videos" / "all" / f"{vid}.mp4") for vid in sentences]
    Q = np.stack(embedded(*sum((["-t", s] for s in sentences.values()), [])))
    frames = np.stack(embedded(*videos))
    sounds = np.stack(embedded(*videos, "--as", "audio"))
    fused = normalise(frames + sounds)
    relevant = [[0], [1], [2]]
    for name, targets in (("video", frames), ("video+audio", fused)):
        forward, backward = both_ways(Q, targets, relevant)
        assert_figures(report["directions"][f"text_to_{name}"], forward)
        assert_figures(report["directions"][f"{name}_to_text"], backward)
    assert report["paper"] == {"text_to_video": {"r1": pytest.approx(0.361)},
                               "text_to_video+audio": {"r1": pytest.approx(0.368)}}


def test_audioset_map_over_classes_prompted_with_the_papers_templates(tmp_path):
    from bindcli.eval.presets import paper_templates

    root = tmp_path / "audioset"
    ids = {"dogdogdog01": "dog_audio.wav", "carcarcar01": "car_audio.wav", "birdbirdb01": "bird_audio.wav"}
    files = youtube_copy(root, ids)
    labels = {"/m/dog": "Dog", "/m/car": "Car", "/m/animal": "Animal", "/m/music": "Music"}
    (root / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n" + "".join(f'{n},{mid},"{name}"\n' for n, (mid, name) in enumerate(labels.items())))
    segments = {"dogdogdog01": "/m/dog,/m/animal", "carcarcar01": "/m/car", "birdbirdb01": "/m/animal"}
    (root / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n# YTID, start_seconds, end_seconds, positive_labels\n"
        + "".join(f'{ytid}, 30.000, 40.000, "{mids}"\n' for ytid, mids in segments.items())
    )
    result = bind("eval", "--preset", "audioset", root, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    templates = paper_templates()
    directions = []
    for name in ["Dog", "Car", "Animal"]:  # Music has no clip: no query
        prompts = np.stack(embedded(*sum((["-t", t.replace("{}", name)] for t in templates), [])))
        mean = prompts.mean(axis=0)
        directions.append(mean / np.linalg.norm(mean))
    T = np.stack(embedded(*(files[y] for y in ids)))
    forward, _ = both_ways(np.stack(directions), T, [[0], [1], [0, 2]])
    assert_figures(report["directions"]["text_to_audio"], {**forward, "map": pytest.approx(forward["map"], abs=1e-6)})
    assert report["paper"] == {"text_to_audio": {"map": pytest.approx(0.176)}}


def test_a_subset_is_marked_not_comparable(tmp_path):
    root = tmp_path / "audiocaps"
    youtube_copy(root, AUDIOCAPS)
    rows = [f"{n},{ytid},30,{c}" for n, (ytid, cs) in enumerate(CAPTIONS.items()) for c in cs]
    (root / "test.csv").write_text("audiocap_id,youtube_id,start_time,caption\n" + "\n".join(rows) + "\n")
    report = json.loads(bind("eval", "--preset", "audiocaps", root, "--limit", "2", "-f", "json").stdout)
    assert (report["queries"], report["targets"]) == (4, 2) and report["comparable"] is False
    assert report["protocol"].endswith("a subset, 2 of 3 audio items: not comparable with the paper's figures")


def test_a_release_file_missing_is_a_usage_error_and_broken_a_data_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for preset, names in [("audiocaps", "test.csv"), ("clotho", "clotho_captions_evaluation.csv"),
                          ("msrvtt-1k-a", "MSRVTT_JSFUSION_test.csv"), ("audioset", "eval_segments.csv")]:
        result = bind("eval", "--preset", preset, tmp_path / "empty")
        assert result.exit_code == 2 and f"no {names}" in result.stderr, result.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "test.csv").write_text("youtube,caption\nabc,def\n")
    result = bind("eval", "--preset", "audiocaps", tmp_path / "bad")
    assert result.exit_code == 1 and "test.csv: cannot read it as AudioCaps' test.csv" in result.stderr


def test_a_second_run_reads_every_vector_from_the_cache(captions, tmp_path):
    import bindcli
    from cli_support import FIXTURES

    data = retrieval.read_pairs(captions[0])
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth", device="cpu",
                               precision="fp32", cache=tmp_path / "cache.sqlite3") as embedder:
        first = retrieval.evaluate(embedder, data)
        encode, towers = embedder.encoder.encode, []
        embedder.encoder.encode = lambda tower, batch: towers.append(tower) or encode(tower, batch)
        again = retrieval.evaluate(embedder, data)
    assert towers == [] and again.figures == first.figures


def test_as_reads_every_file_as_that_kind(tmp_path):
    """`--as audio` on videos scores their sound tracks."""
    for n in range(2):
        write_av(tmp_path / f"v{n}.mp4", "aac", 16000, tone(500 + 900 * n), video=True)
    table = tmp_path / "pairs.csv"
    table.write_text("query_text,target\nlow,v0.mp4\nhigh,v1.mp4\n")
    report = json.loads(bind("eval", "--task", "retrieval", table, "--as", "audio", "-f", "json").stdout)
    Q = np.stack(embedded("-t", "low", "-t", "high"))
    T = np.stack(embedded(tmp_path / "v0.mp4", tmp_path / "v1.mp4", "--as", "audio"))
    assert_figures(report["directions"]["query_to_target"], reference(Q, T, [[0], [1]]))


def test_a_row_with_a_blank_side_names_its_line(tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text("query_text,target\na dog,dog.jpg\n,\na car,\n")
    result = bind("eval", "--task", "retrieval", table)
    assert result.exit_code == 2 and f"{table}:4: no target" in result.stderr
