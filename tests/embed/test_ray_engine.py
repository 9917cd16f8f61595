"""`--engine ray` on a real local Ray cluster (one per module): the local engine's vectors,
bad files named, a worker killed mid-job, a killed driver resumed, and no Ray without it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cli_support import (
    MEDIA, SMALL, bind, index_summary, integrity_ok, jsonl, killed_after_commits, sql, write_notes,
)
from bindcli.collections.store import Store, decode_vector

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

ROOT = Path(__file__).resolve().parents[2]
#: this checkout first, for the subprocesses (and the cluster's workers they start)
PYTHONPATH = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
FILES = ["bird_image.jpg", "dog_audio.wav", "synthetic_0.mp4", "car_image.jpg", "synthetic_rgba_0.png"]


@pytest.fixture(scope="module")
def cluster():
    """A two-CPU Ray instance for the module; its temp dir short (Unix socket paths are
    limited to 107 bytes)."""
    import ray
    temp = tempfile.mkdtemp(prefix="bray", dir="/tmp")
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
        configure_logging=False,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    for name in FILES:
        shutil.copy(MEDIA / name, root / name)
    (root / "note.txt").write_text("a dog barking in the park", encoding="utf-8")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _vectors(db: Path) -> dict[str, np.ndarray]:
    with Store(db) as store:
        dtype = store.collections()[0].dtype
    rows = sql(db, "SELECT path, vector FROM items WHERE NOT deleted")
    return {Path(path).name: decode_vector(blob, dtype) for path, blob in rows}


def test_embed_gives_the_local_engines_vectors_and_names_a_bad_file(cluster, folder, tmp_path):
    files = [folder / name for name in FILES] + [folder / "broken.jpg"]
    remote = bind("embed", *files, "--text", "a dog", "--engine", "ray", "-o", tmp_path / "ray.npy")
    local = bind("embed", *files, "--text", "a dog", "--no-cache")
    assert remote.exit_code == local.exit_code == 1
    assert [line for line in remote.stderr.splitlines() if "broken.jpg" in line] == [
        f"bind: {folder / 'broken.jpg'}: cannot read image: cannot identify image file "
        f"'{folder / 'broken.jpg'}'"
    ]
    want = jsonl(local.stdout)
    manifest = json.loads((tmp_path / "ray.npy.json").read_text())
    assert [r["input"] for r in manifest["rows"]] == [r["input"] for r in want] == [*map(str, files[:-1]), "a dog"]
    assert manifest["precision"] == "fp32"
    np.testing.assert_allclose(np.load(tmp_path / "ray.npy"), [r["embedding"] for r in want], rtol=0, atol=1e-6)


def test_index_gives_the_local_engines_collection(cluster, folder, tmp_path):
    remote = bind("index", folder, "--db", tmp_path / "ray.sqlite3", "--engine", "ray", "--workers", "1")
    local = bind("index", folder, "--db", tmp_path / "local.sqlite3")
    assert remote.exit_code == local.exit_code == 1, remote.stderr
    assert "broken.jpg" in remote.stderr and index_summary(remote) == index_summary(local)
    got, want = _vectors(tmp_path / "ray.sqlite3"), _vectors(tmp_path / "local.sqlite3")
    assert sorted(got) == sorted(want) == sorted([*FILES, "note.txt"])
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6)
    again = bind("index", folder, "--db", tmp_path / "ray.sqlite3", "--engine", "ray")
    assert index_summary(again)["unchanged"] == len(want)  # nothing sent to the cluster


def _encoding_actors() -> list:
    """The processes of the pool's actors (Ray titles them after the operator)."""
    import psutil
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "MapBatches(Encode)" in " ".join(proc.info["cmdline"] or ()):
                found.append(proc)
    return found


def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes(cluster, tmp_path):
    notes = write_notes(tmp_path, 60, "a bird sang", digits=2)
    result: dict = {}
    job = threading.Thread(target=lambda: result.update(
        run=bind("embed", *notes, "--engine", "ray", "-b", "1")
    ))
    job.start()
    deadline, victims = time.monotonic() + 60, []
    while not victims and job.is_alive() and time.monotonic() < deadline:
        victims = _encoding_actors()
        time.sleep(0.02)
    assert victims, "no encoding actor appeared"
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    job.join(timeout=120)
    assert not job.is_alive()
    run = result["run"]
    if run.exit_code == 0:  # Ray Data restarted the actor and retried its batches
        local = jsonl(bind("embed", *notes, "--no-cache", "-b", "1").stdout)
        got = jsonl(run.stdout)  # the cluster's message about the death is on stderr
        assert [r["input"] for r in got] == [r["input"] for r in local]
        for g, w in zip(got, local):
            np.testing.assert_allclose(g["embedding"], w["embedding"], rtol=0, atol=1e-6)
    else:  # or it failed in one clear line, without a traceback
        assert run.exit_code == 1 and run.stderr.startswith("bind: "), run.stderr
        assert "Traceback" not in run.stderr


def test_a_killed_driver_resumes_without_re_embedding_what_was_committed(cluster, tmp_path):
    folder = tmp_path / "notes"
    total = 60
    write_notes(folder, total, "a dog barked")
    db = tmp_path / "c.sqlite3"
    args = ["index", str(folder), "--db", str(db), "-b", "1", "-q", "--engine", "ray", "--address", cluster]
    killed_after_commits(args, db, 8, env={"PYTHONPATH": PYTHONPATH})
    Store(db).close()  # opened as bind opens it
    assert integrity_ok(db)
    ((done_before,),) = sql(db, "SELECT COUNT(*) FROM items")
    assert 8 <= done_before < total

    result = bind("index", folder, "--db", db, "-b", "1", "--engine", "ray")
    assert result.exit_code == 0, result.stderr
    summary = index_summary(result)
    assert summary["unchanged"] == done_before
    assert summary["embedded"] == total - done_before  # the engine has no cache: all real work
    (rows,) = sql(db, "SELECT COUNT(*), COUNT(DISTINCT path) FROM items")
    assert rows == (total, total)


#: runs bind with Ray made unimportable, then says whether anything imported it
NO_RAY = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'ray' or name.startswith('ray.'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
    "sys.meta_path.insert(0, Block())\n"
    "sys.argv = ['bind', *sys.argv[1:]]\n"
    "from bindcli.cli.app import main\n"
    "try:\n    main()\nexcept SystemExit as exc:\n    print('EXIT', exc.code, file=sys.stderr)\n"
)


def _without_ray(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **SMALL, "PYTHONPATH": PYTHONPATH}
    return subprocess.run([sys.executable, "-c", NO_RAY, *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_without_ray_the_engine_names_the_install_and_local_still_works():
    image = str(MEDIA / "bird_image.jpg")
    done = _without_ray("embed", image, "--engine", "ray")
    assert "pip install 'bindcli[ray]'" in done.stderr and "EXIT 2" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    local = _without_ray("embed", image, "--no-cache", "-f", "jsonl")
    assert "EXIT 0" in local.stderr, local.stderr
    assert len(jsonl(local.stdout)) == 1
    shown = _without_ray("index", "--help")  # nothing imports Ray to show the options
    assert "EXIT 0" in shown.stderr and "--gpus-per-worker" in shown.stdout, shown.stderr


def test_a_pool_the_cluster_cannot_hold_is_refused_not_awaited(cluster):
    image = str(MEDIA / "bird_image.jpg")
    gpus = bind("embed", image, "--engine", "ray", "--gpus-per-worker", "1")
    assert gpus.exit_code == 2 and "needs more GPUs than the cluster has (0)" in gpus.stderr
    cpus = bind("embed", image, "--engine", "ray", "--workers", "2")
    assert cpus.exit_code == 2 and "leaves no CPU for decoding on a cluster of 2 CPUs" in cpus.stderr


def test_address_auto_without_a_cluster_is_one_line_not_a_traceback(monkeypatch):
    """`auto` joins any Ray running on this machine (Ray finds its processes), so "no cluster"
    cannot be arranged while other tests run Ray: ray.init raises what Ray raises then."""
    import ray

    def no_cluster(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_cluster)
    done = bind("embed", "-t", "x", "--engine", "ray", "--address", "auto")
    assert done.exit_code == 1 and done.stdout == "" and "Traceback" not in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("bind: ")]
    assert said == [said[0]] and "--address auto: no Ray cluster answers" in said[0] and "ray start --head" in said[0]


def test_ray_options_without_the_ray_engine_are_refused():
    result = bind("embed", str(MEDIA / "bird_image.jpg"), "--workers", "2")
    assert result.exit_code == 2 and "--engine ray" in result.stderr


@pytest.fixture(scope="module")
def s3():
    """An S3-compatible server (moto's) on 127.0.0.1 for the module, which pyarrow (on the
    driver and, through the job's runtime environment, on the workers) and boto3 reach by
    `AWS_ENDPOINT_URL`, with dummy credentials; yields a boto3 client."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server.start()  # returns once the server listens
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bind-test",
            "AWS_SECRET_ACCESS_KEY": "bind-test", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            env.setenv(name, value)
        import boto3

        yield boto3.client("s3")
    server.stop()


@pytest.fixture
def bucket(s3, folder):
    """`folder`'s files as objects under s3://bind-media/<test>/, in a sub-prefix too."""
    prefix = f"t{time.monotonic_ns()}"
    if "bind-media" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="bind-media")
    for path in sorted(folder.iterdir()):
        key = f"{prefix}/{'deep/' if path.suffix == '.mp4' else ''}{path.name}"
        s3.upload_file(str(path), "bind-media", key)
    return f"s3://bind-media/{prefix}"


def test_index_of_an_s3_prefix_is_the_local_index_read_by_the_workers(
    cluster, folder, bucket, s3, tmp_path, monkeypatch
):
    def driver_reads(uri, copy):
        raise AssertionError(f"the driver read {uri}")

    monkeypatch.setattr("bindcli.embed.object_store.fetch", driver_reads)  # the workers' own is intact
    db = tmp_path / "s3.sqlite3"
    remote = bind("index", bucket + "/", "--db", db, "--engine", "ray")
    local = bind("index", folder, "--db", tmp_path / "local.sqlite3")
    assert remote.exit_code == local.exit_code == 1, remote.stderr
    assert [line for line in remote.stderr.splitlines() if "broken.jpg" in line] == [
        f"bind: {bucket}/broken.jpg: cannot read image: cannot identify image file '{bucket}/broken.jpg'"
    ]
    assert index_summary(remote) == index_summary(local)
    paths = sorted(p for (p,) in sql(db, "SELECT path FROM items"))
    assert paths == sorted(f"{bucket}/{'deep/' if n.endswith('.mp4') else ''}{n}" for n in [*FILES, "note.txt"])
    got, want = _vectors(db), _vectors(tmp_path / "local.sqlite3")
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6)

    found = bind("search", "--text", "a car", "--db", db, "--under", f"{bucket}/deep/", "-f", "jsonl")
    assert [r["path"] for r in jsonl(found.stdout)] == [f"{bucket}/deep/synthetic_0.mp4"], found.stderr
    s3.delete_object(Bucket="bind-media", Key=f"{bucket.split('/', 3)[3]}/note.txt")
    again = bind("index", bucket, "s3://no-such-bucket/photos", "--db", db, "--engine", "ray")
    assert again.exit_code == 1
    summary = index_summary(again)
    assert (summary["unchanged"], summary["embedded"], summary["removed"]) == (len(want) - 1, 0, 1)
    assert [line for line in again.stderr.splitlines() if "no-such-bucket" in line] == [
        "bind: s3://no-such-bucket/photos: When listing objects under key 'photos/' in bucket "
        "'no-such-bucket': AWS Error NO_SUCH_BUCKET during ListObjectsV2 operation: The "
        "specified bucket does not exist"
    ], again.stderr


def test_embed_of_s3_objects_gives_the_local_vectors(cluster, folder, bucket, tmp_path):
    names = ["bird_image.jpg", "dog_audio.wav", "note.txt"]
    uris = [f"{bucket}/{n}" for n in names] + [f"{bucket}/missing.jpg"]
    remote = bind("embed", *uris, "--engine", "ray", "-o", tmp_path / "s3.npy")
    local = bind("embed", *(folder / n for n in names), "--no-cache")
    assert remote.exit_code == 1 and local.exit_code == 0
    assert [line for line in remote.stderr.splitlines() if "missing.jpg" in line] == [
        f"bind: {bucket}/missing.jpg: no such object or prefix"
    ]
    manifest = json.loads((tmp_path / "s3.npy.json").read_text())
    want = jsonl(local.stdout)
    assert [r["input"] for r in manifest["rows"]] == uris[:-1]
    assert [r["sha256"] for r in manifest["rows"]] == [
        hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names
    ]
    np.testing.assert_allclose(np.load(tmp_path / "s3.npy"), [r["embedding"] for r in want], rtol=0, atol=1e-6)


def test_a_uri_without_the_ray_engine_is_one_usage_error(tmp_path):
    for args in (["index", "s3://bucket/photos", "--db", tmp_path / "c.sqlite3"],
                 ["embed", str(MEDIA / "bird_image.jpg"), "gs://bucket/dog.jpg"]):
        result = bind(*args)
        assert result.exit_code == 2, result.stderr
        uri = args[1] if args[0] == "index" else args[2]
        assert result.stderr.strip().splitlines() == [
            f"bind: {uri}: URIs are read by the Ray engine's workers: add --engine ray"
        ]
