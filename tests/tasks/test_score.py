"""`bind score` and `bindcli.score`: the ImageBind score equals `bind compare`'s cosine x 100
(or x `--scale`) on the same inputs; a video against its own sound; pairs tables of files and
texts; `--frames`/`--clips` reach the loader; failures named, the rest scored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_support import FIXTURES, bind, jsonl, media, write_av


def tone(freq: float, seconds: float = 2.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def videos(tmp_path):
    """Two short videos with a sound track each."""
    paths = []
    for n, freq in enumerate((440.0, 1800.0)):
        path = tmp_path / f"clip{n}.mp4"
        write_av(path, "aac", 16000, tone(freq, 6.0), video=True, shade=90 * n)
        paths.append(path)
    return paths


def compare_cosine(a: list[str], b: list[str]) -> float:
    """`bind compare`'s cosine of one row input against one column (`--against`) input."""
    result = bind("compare", *a, *b, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["scores"][0][0]


def test_a_video_against_its_own_sound_is_compare_times_100(videos):
    result = bind("score", *videos)
    assert result.exit_code == 0, result.stderr
    scores = jsonl(result.stdout)
    assert [(s["a"], s["a_kind"], s["b"], s["b_kind"]) for s in scores] == [
        (str(v), "video", str(v), "audio") for v in videos]
    for video, s in zip(videos, scores):
        # the same file under a sound's name: compare reads its frames against its sound track
        sound = video.with_name(video.stem + "_sound.m4a")
        sound.symlink_to(video)
        assert s["score"] == pytest.approx(100 * compare_cosine([video], ["--against", sound]), abs=1e-3)
    assert "ImageBind score" in result.stderr and "x 100" in result.stderr
    assert "10 a video: 5 clips of 2 s" in result.stderr and "3 clips of 2 s" in result.stderr


def test_pairs_of_files_and_texts_equal_compare(tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text(f"a,b\n{media('dog_image.jpg')},{media('dog_audio.wav')}\n"
                     f"{media('car_image.jpg')},{media('bird_audio.wav')}\n")
    texts = tmp_path / "captions.tsv"
    texts.write_text(f"a_text\tb\na dog\t{media('dog_image.jpg')}\nbirds singing\t{media('bird_audio.wav')}\n")
    result = bind("score", "--pairs", table, "--pairs", texts)
    assert result.exit_code == 0, result.stderr
    scores = [s["score"] for s in jsonl(result.stdout)]
    expected = [
        compare_cosine([media("dog_image.jpg")], ["--against", media("dog_audio.wav")]),
        compare_cosine([media("car_image.jpg")], ["--against", media("bird_audio.wav")]),
        compare_cosine(["-t", "a dog"], ["--against", media("dog_image.jpg")]),
        compare_cosine(["-t", "birds singing"], ["--against", media("bird_audio.wav")]),
    ]
    assert scores == pytest.approx([100 * e for e in expected], abs=1e-3)
    raw = jsonl(bind("score", "--pairs", table, "--pairs", texts, "--scale", "1").stdout)
    assert [s["score"] for s in raw] == pytest.approx(expected, abs=1e-5)
    summary = json.loads(bind("score", "--pairs", table, "--pairs", texts, "-f", "json").stdout)
    assert summary["mean"] == pytest.approx(np.mean(scores), abs=1e-5) and summary["pairs"] == 4
    assert summary["definition"] == "cosine of the two unit vectors x 100" and summary["scale"] == 100


def test_paths_in_a_pairs_file_are_relative_to_it(tmp_path):
    import shutil

    (tmp_path / "sub").mkdir()
    shutil.copy(media("dog_image.jpg"), tmp_path / "sub" / "dog.jpg")
    shutil.copy(media("dog_audio.wav"), tmp_path / "sub" / "dog.wav")
    (tmp_path / "sub" / "pairs.csv").write_text("a,b\ndog.jpg,dog.wav\n")
    scored = jsonl(bind("score", tmp_path / "sub" / "pairs.csv").stdout)
    assert scored[0]["a"] == str(tmp_path / "sub" / "dog.jpg")


def test_frames_and_clips_reach_the_loader(videos):
    """`--frames 4 --clips 5` scores as an embedder loading 2 video clips and 5 sound clips."""
    import bindcli
    from bindcli.embed.inputs import Input
    from bindcli.media.options import MediaOptions
    from bindcli.modality import Kind

    result = bind("score", videos[0], "--frames", "4", "--clips", "5", "-f", "json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"].startswith("4 a video: 2 clips") and summary["sound"].startswith("5 clips")
    options = MediaOptions(video_clips=2, audio_clips=5)
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth", device="cpu",
                               precision="fp32", cache=False, options=options) as embedder:
        frames, sound = embedder.embed([Input(str(videos[0]), Kind.VIDEO), Input(str(videos[0]), Kind.AUDIO)])
    assert summary["scores"][0]["score"] == pytest.approx(100 * float(frames.unit @ sound.unit), abs=1e-3)
    default = json.loads(bind("score", videos[0], "-f", "json").stdout)["scores"][0]["score"]
    assert default != pytest.approx(summary["scores"][0]["score"], abs=1e-3)


@pytest.mark.parametrize("args, says", [
    (["--frames", "5"], "even number"),
    (["--scale", "0"], "above 0"),
    ([], "give a video or a pairs file"),
])
def test_usage_errors(videos, args, says):
    given = [videos[0]] if args else []
    result = bind("score", *given, *args)
    assert result.exit_code == 2 and says in " ".join(result.stderr.replace("│", " ").split())


def test_a_bad_input_is_named_and_the_rest_scored(videos, tmp_path):
    silent = media("synthetic_0.mp4")  # no sound track
    result = bind("score", videos[0], silent, tmp_path / "missing.mp4", media("dog_audio.wav"))
    assert result.exit_code == 1
    assert "no audio track" in result.stderr and "missing.mp4" in result.stderr
    assert "dog_audio.wav: audio, not a video" in result.stderr
    assert [s["a"] for s in jsonl(result.stdout)] == [str(videos[0])]
    nothing = bind("score", tmp_path / "missing.mp4")
    assert nothing.exit_code == 1 and nothing.stdout == ""
