"""`bind doctor`: versions, the `auto` device choice, the weights' check, folders; no model."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from bindcli import weights
from cli_support import FIXTURES, bind

#: a hash set in the developer's shell would change every check
CLEAN = {"BIND_WEIGHTS_SHA256": None}


@pytest.fixture
def checkpoint(tmp_path):
    """A copy of the small checkpoint with the record a download leaves beside it, and its hash."""
    path = tmp_path / "model.pth"
    shutil.copyfile(FIXTURES / "public.pth", path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    weights.write_record(path, sha256=sha256, source="test")
    return path, sha256


def doctor(*args, env=None) -> tuple[int, dict]:
    result = bind("doctor", *args, env={**CLEAN, **(env or {})})
    return result.exit_code, json.loads(result.stdout)


def test_a_pipe_gets_json_of_versions_device_weights_folders_and_environment(tmp_path):
    (tmp_path / "bind.sqlite3").write_bytes(b"x" * 1000)
    code, report = doctor(env={"BIND_DATA_DIR": str(tmp_path), "BIND_CACHE_DIR": str(tmp_path / "no")})
    assert code == 0
    assert {"bind", "python", "torch", "torchaudio", "PyAV"} <= set(report["versions"])
    assert report["versions"]["torch"] and report["versions"]["PyAV"]
    assert report["device"]["precision"] in {"fp32", "bf16", "fp16"} and report["device"]["why"]
    assert report["folders"]["data"] == {"path": str(tmp_path), "exists": True, "size_bytes": 1000}
    assert report["folders"]["cache"]["exists"] is False
    assert report["environment"]["BIND_DATA_DIR"] == str(tmp_path)
    assert report["weights"]["chosen_by"] == "BIND_WEIGHTS"


def test_by_default_the_size_is_checked_against_the_record_not_the_hash(checkpoint):
    path, sha256 = checkpoint
    code, report = doctor(env={"BIND_WEIGHTS": str(path)})
    checked = report["weights"]
    assert code == 0
    assert (checked["check"], checked["ok"], checked["sha256"]) == ("size", True, sha256)
    assert "SHA-256 not recomputed" in checked["detail"]


def test_verify_hashes_the_whole_file(checkpoint):
    path, sha256 = checkpoint
    code, report = doctor("--verify", "--weights", str(path))
    checked = report["weights"]
    assert (code, checked["check"], checked["ok"], checked["sha256"]) == (0, "sha256", True, sha256)
    assert checked["chosen_by"] == "--weights"


def test_a_changed_checkpoint_fails_either_check_with_exit_1(checkpoint):
    path, _ = checkpoint
    with open(path, "ab") as f:
        f.write(b"\0")
    code, report = doctor("--weights", str(path))
    assert (code, report["weights"]["ok"]) == (1, False) and "the record says" in report["weights"]["detail"]
    code, report = doctor("--weights", str(path), "--verify")
    assert (code, report["weights"]["check"], report["weights"]["ok"]) == (1, "sha256", False)


def test_a_recorded_hash_other_than_the_expected_one_fails_without_hashing(checkpoint):
    path, _ = checkpoint
    code, report = doctor("--weights", str(path), env={"BIND_WEIGHTS_SHA256": "ab" * 32})
    assert (code, report["weights"]["check"]) == (1, "size")
    assert "BIND_WEIGHTS_SHA256 says" in report["weights"]["detail"]


def test_without_a_record_there_is_nothing_to_compare(tmp_path):
    path = tmp_path / "by-hand.pth"
    shutil.copyfile(FIXTURES / "public.pth", path)
    code, report = doctor("--weights", str(path))
    assert (code, report["weights"]["ok"], report["weights"]["check"]) == (0, None, "size")


def test_weights_not_downloaded_yet_are_a_finding_not_a_failure(tmp_path):
    code, report = doctor(env={
        "BIND_WEIGHTS": None, "BIND_MODEL_CONFIG": None, "BIND_CACHE_DIR": str(tmp_path),
    })
    assert code == 0
    assert report["weights"] == {
        "path": str(tmp_path / "imagebind_huge.pth"), "chosen_by": "cache",
        "detail": "not downloaded yet (`bind weights download`)", "present": False,
        "size_bytes": None, "check": "none", "ok": None, "sha256": None,
    }


def test_a_person_gets_titled_sections(checkpoint):
    path, _ = checkpoint
    shown = bind("doctor", "-f", "table", "--weights", str(path), env=CLEAN).stdout
    # what a command would use: cli_support's runs set BIND_DEVICE=cpu, BIND_PRECISION=fp32
    for title in ("Versions", "Device and precision (cpu, fp32)", "Weights", "Folders", "Extras", "Server", "Environment"):
        assert title in shown
    assert "ok: size matches the record of" in " ".join(shown.split())


@pytest.mark.slow
def test_no_model_code_is_imported():
    probe = (
        "import sys\nsys.argv = ['bind', 'doctor']\nfrom bindcli.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('bindcli.model.', 'bindcli.embed.embedder'))"
        " and m not in ('bindcli.model.pretrained', 'bindcli.model.placement')), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "BIND_WEIGHTS": str(FIXTURES / "public.pth")}, timeout=120)
    json.loads(done.stdout)
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_on_a_bf16_gpu_auto_picks_it_and_says_why(monkeypatch):
    """What a GPU machine would report, by torch's answers (no GPU needed to run this)."""
    import types

    import torch

    from bindcli.doctor import device

    gpu = types.SimpleNamespace(name="NVIDIA H200", total_memory=140 * 2**30, major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    found = device()
    assert (found.device, found.precision) == ("cuda", "bf16")
    assert found.why == "torch sees 1 CUDA GPU; the GPU supports bf16"
    assert found.gpus == ("cuda:0 NVIDIA H200 (140 GiB, compute capability 9.0)",)


def test_the_hash_a_json_config_publishes_fails_a_changed_checkpoint_without_a_record(tmp_path):
    path = tmp_path / "public.pth"
    shutil.copyfile(FIXTURES / "public.pth", path)
    published = hashlib.sha256(path.read_bytes()).hexdigest()
    mine = tmp_path / "mine.json"
    shape = json.loads((FIXTURES / "public_config.json").read_text())
    mine.write_text(json.dumps({**shape, "weights": {"url": "http://127.0.0.1:9/public.pth", "sha256": published}}))
    given = ("--weights", str(path), "--model-config", str(mine))
    code, report = doctor("--verify", *given)
    assert (code, report["weights"]["ok"]) == (0, True)
    assert report["weights"]["detail"] == f"SHA-256 matches the published SHA-256 of {mine}"
    with open(path, "r+b") as f:
        f.write(b"\1")
    changed = hashlib.sha256(path.read_bytes()).hexdigest()
    code, report = doctor("--verify", *given)
    assert (code, report["weights"]["ok"]) == (1, False)
    assert report["weights"]["detail"] == f"SHA-256 is {changed}, expected {published} (the published SHA-256 of {mine})"
    weights.write_record(path, sha256=changed, source="test")
    code, report = doctor(*given)
    assert (code, report["weights"]["check"]) == (1, "size")
    assert f"the recorded SHA-256 is {changed}, the published SHA-256 of {mine} says {published}" in report["weights"]["detail"]


def test_the_device_and_precision_a_command_would_use_and_the_extras(checkpoint, monkeypatch):
    path, _ = checkpoint
    report = json.loads(bind("doctor", "--weights", str(path), env={**CLEAN, "BIND_PRECISION": "bf16"}).stdout)
    assert (report["device"]["asked"], report["device"]["precision"]) == ("cpu, bf16", "bf16")
    shown = bind("doctor", "-f", "table", "--weights", str(path), env={**CLEAN, "BIND_PRECISION": "bf16"}).stdout
    assert "Device and precision (cpu, bf16)" in shown
    auto = json.loads(bind("doctor", "--weights", str(path), env={**CLEAN, "BIND_DEVICE": None, "BIND_PRECISION": None}).stdout)
    assert auto["device"]["asked"] == "auto"
    assert set(report["extras"]) == {"serve", "generate", "index", "ray", "plot", "eval"}
    assert report["extras"]["index"].startswith("faiss-cpu ")  # [test] installs every extra
    import importlib.util

    from bindcli import doctor

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real(name, *a))
    assert doctor.extras_installed()["index"] == "missing faiss: pip install 'bindcli[index]'"


def test_no_server_is_said_where_there_is_no_socket(checkpoint):
    path, _ = checkpoint
    report = json.loads(bind("doctor", "--weights", str(path), env=CLEAN).stdout)
    assert report["server"]["state"] == "no server (no socket there)"
    assert report["server"]["address"].endswith("serve.sock")
