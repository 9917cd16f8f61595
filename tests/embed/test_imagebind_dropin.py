"""`bindcli.imagebind`, upstream's Python API: its README example and its functions compute
what upstream computes (preprocess.npz, end_to_end.npz, public_model_io.npz)."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import parity

from bindcli.errors import CheckpointError, InputError, WeightsError
from bindcli.imagebind import data
from bindcli.imagebind.models import imagebind_model
from bindcli.imagebind.models.imagebind_model import ImageBindModel, ModalityType
from bindcli.media import MediaOptions, load
from bindcli.media.audio import FBANK_MEAN, FBANK_STD
from bindcli.modality import Kind

README = Path(__file__).resolve().parents[2] / "README.md"
IMAGES = ["dog_image.jpg", "car_image.jpg", "bird_image.jpg",
          "synthetic_rgba_0.png", "synthetic_gray_0.jpg"]
SOUNDS = ["dog_audio.wav", "car_audio.wav", "bird_audio.wav",
          "synthetic_short_0.wav", "synthetic_stereo_0.wav"]
VIDEO = "synthetic_0.mp4"
UPSTREAM_IMPORTS = [
    "from imagebind import data",
    "import torch",
    "from imagebind.models import imagebind_model",
    "from imagebind.models.imagebind_model import ModalityType",
]


@pytest.fixture(scope="module")
def small_model(small_config_path, small_weights_path):
    """The small model, built the way an upstream user builds a custom one."""
    model = ImageBindModel(**json.loads(small_config_path.read_text()))
    model.load_state_dict(torch.load(small_weights_path, weights_only=True), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return dict(np.load(fixtures_dir / "end_to_end.npz"))


@pytest.fixture
def small_huge(monkeypatch, small_config_path):
    """`imagebind_huge` building the small model's shape, so its checkpoint fits."""
    monkeypatch.setattr(imagebind_model, "HUGE", str(small_config_path))


def _close_embeddings(ours: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=1e-4)


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```py\n(.*?)^```", text, re.S | re.M)
              if "bindcli.imagebind" in b]
    assert len(blocks) == 1, "the README shows one ported upstream example"
    return blocks[0]


def test_readme_example_is_upstreams_with_only_the_imports_changed():
    lines = _readme_example().splitlines()
    imports = [line for line in lines if line.startswith(("from ", "import "))]
    assert [line.replace("bindcli.imagebind", "imagebind") for line in imports] == UPSTREAM_IMPORTS
    assert not [line for line in lines if "bindcli" in line and line not in imports]


def test_readme_example_runs_and_matches_upstream(
    small_huge, monkeypatch, tmp_path, media_dir, small_weights_path, preprocessed, reference,
    reference_texts,
):
    (tmp_path / ".assets").symlink_to(media_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIND_WEIGHTS", str(small_weights_path))  # found by bind's resolve
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(_readme_example(), "README.md", "exec"), namespace)

    inputs, embeddings = namespace["inputs"], namespace["embeddings"]
    assert reference_texts[:3] == namespace["text_list"]
    np.testing.assert_array_equal(inputs["text"].numpy(), preprocessed["text/tokens"][:3])
    for i, name in enumerate(IMAGES[:3]):
        expected = preprocessed[f"vision/{name}"]
        parity.assert_matches(inputs["vision"][i].numpy(), expected, parity.VISION)
        _close_embeddings(embeddings["vision"][i], reference[f"vision/{name}"])
    for i, name in enumerate(SOUNDS[:3]):
        expected = preprocessed[f"audio/{name}"]
        parity.assert_matches(inputs["audio"][i].numpy(), expected, parity.AUDIO)
        _close_embeddings(embeddings["audio"][i], reference[f"audio/{name}"])
    _close_embeddings(embeddings["text"], reference["text/tokens"][:3])
    shown = printed.getvalue()
    assert [line.split(":")[0] for line in shown.splitlines() if ":" in line] == [
        "Vision x Text", "Audio x Text", "Vision x Audio"
    ]


def test_loaders_give_upstreams_tensors(media_dir, preprocessed, reference_texts):
    text = data.load_and_transform_text(reference_texts, "cpu")
    assert text.dtype == torch.int64
    np.testing.assert_array_equal(text.numpy(), preprocessed["text/tokens"])

    vision = data.load_and_transform_vision_data([media_dir / n for n in IMAGES], "cpu")
    assert vision.shape == (5, 3, 224, 224) and vision.dtype == torch.float32
    for i, name in enumerate(IMAGES):
        parity.assert_matches(vision[i].numpy(), preprocessed[f"vision/{name}"], parity.VISION)

    audio = data.load_and_transform_audio_data([str(media_dir / n) for n in SOUNDS], "cpu")
    assert audio.shape == (5, 3, 1, 128, 204) and audio.dtype == torch.float32
    for i, name in enumerate(SOUNDS):
        parity.assert_matches(audio[i].numpy(), preprocessed[f"audio/{name}"], parity.AUDIO)

    video = data.load_and_transform_video_data([media_dir / VIDEO], torch.device("cpu"))
    assert video.shape == (1, 15, 3, 2, 224, 224) and video.dtype == torch.float32
    parity.assert_matches(video[0].numpy(), preprocessed[f"video/{VIDEO}"], parity.VIDEO)


def test_model_outputs_equal_upstreams(small_model, fixtures_dir):
    io_ = dict(np.load(fixtures_dir / "public_model_io.npz"))
    towers = [ModalityType.VISION, ModalityType.TEXT, ModalityType.AUDIO, ModalityType.DEPTH,
              ModalityType.THERMAL, ModalityType.IMU]
    with torch.no_grad():
        out = small_model({tower: torch.from_numpy(io_[f"in_{tower}"]) for tower in towers})
        video = small_model({ModalityType.VISION: torch.from_numpy(io_["in_video"])})
    assert list(out) == towers
    for tower in towers:
        _close_embeddings(out[tower], io_[f"out_{tower}"])
    _close_embeddings(video[ModalityType.VISION], io_["out_video"])


def test_video_embedding_equals_upstreams(small_model, media_dir, reference):
    clips = data.load_and_transform_video_data([media_dir / VIDEO], "cpu")
    with torch.no_grad():
        out = small_model({ModalityType.VISION: clips})
    _close_embeddings(out["vision"][0], reference[f"video/{VIDEO}"])


def test_none_gives_none():
    assert data.load_and_transform_text(None, "cpu") is None
    assert data.load_and_transform_vision_data(None, "cpu") is None
    assert data.load_and_transform_audio_data(None, "cpu") is None
    assert data.load_and_transform_video_data(None, "cpu") is None


def test_tensors_land_on_the_device(media_dir):
    device = "cuda:0" if torch.cuda.is_available() else "meta"  # meta: placement without a GPU
    on = torch.device(device)
    assert data.load_and_transform_text(["a dog"], device).device == on
    assert data.load_and_transform_vision_data([media_dir / IMAGES[0]], device).device == on
    assert data.load_and_transform_audio_data([media_dir / SOUNDS[3]], device).device == on


@pytest.mark.parametrize(("mean", "std"), [(0.0, FBANK_STD), (FBANK_MEAN, 2 * FBANK_STD)])
def test_audio_mean_and_std_are_honoured(media_dir, preprocessed, mean, std):
    out = data.load_and_transform_audio_data([media_dir / SOUNDS[0]], "cpu", mean=mean, std=std)
    raw = preprocessed[f"audio/{SOUNDS[0]}"] * FBANK_STD + FBANK_MEAN  # upstream's fbank
    parity.assert_matches(out[0].numpy(), (raw - mean) / std, parity.AUDIO, scale=FBANK_STD / std)


def test_clip_keywords_are_honoured(media_dir):
    audio = data.load_and_transform_audio_data(
        [media_dir / SOUNDS[0]], "cpu", clip_duration=1, clips_per_video=2
    )
    options = MediaOptions(audio_clips=2, audio_clip_seconds=1)
    expected = load(media_dir / SOUNDS[0], Kind.AUDIO, options)
    torch.testing.assert_close(audio[0], expected, atol=0, rtol=0)
    video = data.load_and_transform_video_data(
        [media_dir / VIDEO], "cpu", clips_per_video=2, sample_rate=44100
    )
    expected = load(media_dir / VIDEO, Kind.VIDEO, MediaOptions(video_clips=2))
    torch.testing.assert_close(video[0], expected, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("load_fn", "keyword", "value"),
    [
        (data.load_and_transform_audio_data, "sample_rate", 44100),
        (data.load_and_transform_video_data, "clip_duration", 1),
    ],
)
def test_keywords_bind_cannot_honour_are_refused(media_dir, load_fn, keyword, value):
    with pytest.raises(ValueError, match=f"{keyword}={value}"):
        load_fn([media_dir / SOUNDS[0]], "cpu", **{keyword: value})


def test_mel_bins_and_frames_are_honoured(media_dir):
    clips = data.load_and_transform_audio_data([media_dir / SOUNDS[0]], "cpu", num_mel_bins=64,
                                               target_length=100)
    assert clips.shape == (1, 3, 1, 64, 100)


def test_a_bad_file_names_itself(tmp_path):
    with pytest.raises(InputError, match="nope.jpg"):
        data.load_and_transform_vision_data([tmp_path / "nope.jpg"], "cpu")


def test_constructor_takes_upstreams_arguments(small_config_path, small_weights_path):
    config = json.loads(small_config_path.read_text())
    model = ImageBindModel(**config)
    assert isinstance(model, torch.nn.Module) and model.training  # a fresh module, as upstream's
    assert list(inspect.signature(ImageBindModel).parameters) == list(config)  # names and order
    state = torch.load(small_weights_path, weights_only=True)
    shapes = {k: v.shape for k, v in state.items()}
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    with pytest.raises(TypeError, match="vision_width"):
        ImageBindModel(vision_width=64)


def test_imagebind_huge_has_the_official_layout(fixtures_dir):
    with torch.device("meta"):  # the real init of 1.2 B numbers takes half a minute
        model = imagebind_model.imagebind_huge(pretrained=False)
    shapes = json.loads((fixtures_dir / "huge_state_dict_shapes.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    assert isinstance(model, ImageBindModel) and model.training


def test_pretrained_comes_from_bind_cache(
    small_huge, monkeypatch, tmp_path, small_weights_path, small_model
):
    monkeypatch.delenv("BIND_WEIGHTS", raising=False)
    monkeypatch.setenv("BIND_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BIND_OFFLINE", "1")  # a download attempt would fail the test
    shutil.copy(small_weights_path, tmp_path / "imagebind_huge.pth")
    model = imagebind_model.imagebind_huge(pretrained=True)
    assert model.training
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())
    for key, value in small_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, atol=0, rtol=0)


def test_pretrained_offline_without_weights_downloads_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("BIND_WEIGHTS", raising=False)
    monkeypatch.setenv("BIND_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BIND_OFFLINE", "1")
    with pytest.raises(WeightsError, match="offline"):
        imagebind_model.imagebind_huge(pretrained=True)
    assert not any(tmp_path.iterdir())


def test_pretrained_refuses_a_checkpoint_that_does_not_fit(monkeypatch, small_weights_path):
    monkeypatch.setenv("BIND_WEIGHTS", str(small_weights_path))
    with pytest.raises(CheckpointError, match="does not match"):
        imagebind_model.imagebind_huge(pretrained=True)
