"""`bind imagebind install | status | uninstall`: the `imagebind` import name for the drop-in.

The wheel pip is given, the refusal where another `imagebind` is there (installed or on the
path), what `status` and `bind doctor` say; then, in a throwaway environment (never the one the
tests run in), the real install by pip, LanceDB's `imagebind` embedding function running on it
(vectors stored equal `bind embed --raw`; search ranks by them), and the uninstall.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bindcli import __version__, imagebind_alias
from bindcli.imagebind_alias import DISTRIBUTION, AliasError
from cli_support import FIXTURES, MEDIA, bind, jsonl
from test_imagebind_dropin import _readme_example as readme_example

ROOT = Path(__file__).resolve().parents[2]


def fake_upstream(folder: Path, distribution: str | None, files: bool = True) -> Path:
    """An upstream-like `imagebind` package in `folder` (which the caller puts on sys.path),
    installed as `distribution` (a dist-info listing its file unless not `files`: an editable
    install), or as a bare checkout when None. Returns its `__init__.py`."""
    init = folder / "imagebind" / "__init__.py"
    init.parent.mkdir(parents=True)
    init.write_text("raise ImportError('upstream: never imported by these tests')\n")
    if distribution is not None:
        info = folder / f"{distribution.replace('-', '_')}-0.1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.2\n")
        (info / "RECORD").write_text("imagebind/__init__.py,,\n" if files else "")
    return init


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """A folder put first on sys.path for the test."""
    folder = tmp_path / "path"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def no_pip(monkeypatch):
    """pip must not be run: running it fails the test."""
    def refuse(*args: str) -> None:
        raise AssertionError(f"ran pip {' '.join(args)}")
    monkeypatch.setattr(imagebind_alias, "_pip", refuse)


def test_the_wheel_holds_the_package_and_a_record_pip_can_check(tmp_path):
    wheel = imagebind_alias.build_wheel(tmp_path)
    assert wheel.name == f"bindcli_imagebind_alias-{__version__}-py3-none-any.whl"
    info = f"bindcli_imagebind_alias-{__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = archive.read(f"{info}/RECORD").decode().splitlines()
        metadata = archive.read(f"{info}/METADATA").decode()
        init = archive.read("imagebind/__init__.py")
        listed = {}
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            listed[name] = (digest, size)
            if name != f"{info}/RECORD":
                data = archive.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert (digest, size) == (f"sha256={expected}", str(len(data)))
    assert sorted(listed) == sorted(names)
    assert f"Name: {DISTRIBUTION}\n" in metadata and f"Requires-Dist: bindcli=={__version__}\n" in metadata
    compile(init, "imagebind/__init__.py", "exec")


def test_nothing_answers_to_imagebind_here():
    found = imagebind_alias.status()
    assert found == imagebind_alias.ImportName(None, None, False)
    assert "not importable" in found.describe()


@pytest.mark.parametrize("distribution", ["imagebind-packaged", "imagebind", "imagebind-unofficial"])
def test_an_installed_upstream_is_named_and_never_shadowed(on_path, no_pip, distribution):
    init = fake_upstream(on_path, distribution)
    found = imagebind_alias.status()
    assert (found.path, found.distribution, found.ours) == (str(init), f"{distribution} 0.1.2", False)
    with pytest.raises(AliasError) as refused:
        imagebind_alias.install()
    assert f"provided here by {distribution} ({init})" in str(refused.value)
    assert f"{sys.executable} -m pip uninstall {distribution}`" in str(refused.value)


def test_an_editable_upstream_that_lists_no_files_is_found_by_its_name(on_path, no_pip):
    fake_upstream(on_path, "imagebind-unofficial", files=False)
    assert imagebind_alias.providers() == ["imagebind-unofficial"]
    with pytest.raises(AliasError, match="pip uninstall imagebind-unofficial"):
        imagebind_alias.install()


def test_a_checkout_on_the_path_is_not_shadowed_either(on_path, no_pip):
    init = fake_upstream(on_path, None)
    assert imagebind_alias.status().describe() == f"not bind's: no installed distribution (a checkout on the path?) at {init}"
    with pytest.raises(AliasError, match=f"here loads {init}, which no installed distribution provides"):
        imagebind_alias.install()


def test_uninstall_leaves_an_upstream_installed_over_the_alias_alone(on_path, no_pip):
    fake_upstream(on_path, "imagebind-packaged")
    ours = on_path / f"bindcli_imagebind_alias-{__version__}.dist-info"
    ours.mkdir()
    (ours / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {__version__}\n")
    (ours / "RECORD").write_text("imagebind/__init__.py,,\n")
    with pytest.raises(AliasError, match=f"imagebind-packaged was installed over {DISTRIBUTION}.*"
                                         "install --force-reinstall imagebind-packaged`"):
        imagebind_alias.uninstall()


def test_uninstall_where_it_is_not_installed_does_nothing(no_pip):
    assert imagebind_alias.uninstall() is False
    result = bind("imagebind", "uninstall")
    assert result.exit_code == 0 and "is not installed here; nothing to do" in result.stderr


def test_the_commands_say_which_imagebind_and_refuse_with_one_line(on_path, no_pip):
    init = fake_upstream(on_path, "imagebind-packaged")
    status = bind("imagebind", "status")
    assert status.exit_code == 0
    assert status.stdout == f"not bind's: imagebind-packaged 0.1.2 at {init}\n"
    refused = bind("imagebind", "install")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.stderr.startswith("bind: `import imagebind` is provided here by imagebind-packaged")
    assert len(refused.stderr.splitlines()) == 1
    report = json.loads(bind("doctor", "--format", "json").stdout)
    assert report["imagebind"] == f"not bind's: imagebind-packaged 0.1.2 at {init}"


@pytest.mark.slow
def test_status_imports_neither_torch_nor_the_drop_in():
    probe = ("import sys\nsys.argv = ['bind', 'imagebind', 'status']\nfrom bindcli.cli.app import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted({'torch', 'bindcli.imagebind'} & set(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.startswith("not importable here") and done.stderr == "[]\n", done.stderr


# --- the real thing, in a throwaway environment -------------------------------------------------

#: run first in each script: `imagebind_huge(pretrained=True)` builds the small model's shape
#: (argv[1], its config), as tests/embed/test_imagebind_dropin.py has it, for BIND_WEIGHTS
SMALL_HUGE = """
import sys
import imagebind.models.imagebind_model
imagebind.models.imagebind_model.HUGE = sys.argv[1]
"""
#: LanceDB's registry function as its documentation uses it; LanceDB, which hard-codes
#: imagebind_huge's width (1024), is told the small model's (32)
LANCEDB = SMALL_HUGE + """
import json
from lancedb.embeddings.imagebind import ImageBindEmbeddings
ImageBindEmbeddings.ndims = lambda self: 32

import lancedb
from lancedb.embeddings import get_registry
from lancedb.pydantic import LanceModel, Vector

func = get_registry().get("imagebind").create()

class Media(LanceModel):
    data: str = func.SourceField()
    vector: Vector(func.ndims()) = func.VectorField()

table = lancedb.connect(sys.argv[2]).create_table("media", schema=Media)
images, sounds, texts = json.loads(sys.argv[3])
for rows in (images, sounds, texts):  # the function takes one kind per call
    table.add([{"data": x} for x in rows])
stored = {r["data"]: [float(v) for v in r["vector"]] for r in table.to_arrow().to_pylist()}
hits = {q: [(r["data"], r["_distance"]) for r in table.search(q).limit(len(stored)).to_list()]
        for q in json.loads(sys.argv[4])}
print(json.dumps({"stored": stored, "hits": hits}))
"""


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory) -> Path:
    """A new environment's python that also sees everything the tests' environment has
    (its site folders are added by a .pth, so its pip, lancedb and this bindcli), while pip
    installs into the new one: the tests' environment is never changed."""
    folder = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    (Path(purelib) / "_tests_environment.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in ours if os.path.isdir(p))
    )
    return python


def run_in(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "BIND_WEIGHTS": str(FIXTURES / "public.pth"), "NO_COLOR": "1"}
    return subprocess.run([str(python), *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


def raw_vectors(files: list[str], texts: list[str]) -> dict[str, np.ndarray]:
    """`bind embed --raw`'s vectors (in this process, the small model), by input."""
    result = bind("embed", "--raw", *files, *[a for t in texts for a in ("--text", t)])
    assert result.exit_code == 0, result.stderr
    return {row["input"]: np.array(row["embedding"], np.float32) for row in jsonl(result.stdout)}


@pytest.mark.slow
def test_lancedb_runs_on_the_installed_name_and_uninstall_removes_it(throwaway, tmp_path):
    site_packages = Path(run_in(throwaway, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    installed = run_in(throwaway, "-m", "bindcli", "imagebind", "install")
    assert installed.returncode == 0, installed.stderr
    assert (site_packages / "imagebind" / "__init__.py").is_file()
    assert installed.stderr.startswith(f"bind: installed {DISTRIBUTION}: `import imagebind` loads bind's drop-in")
    status = run_in(throwaway, "-m", "bindcli", "imagebind", "status")
    assert status.stdout == (f"bind's drop-in (bindcli.imagebind), through {DISTRIBUTION} {__version__} "
                             f"at {site_packages / 'imagebind' / '__init__.py'}\n")
    same = run_in(throwaway, "-c", "import imagebind, imagebind.data, imagebind.models.imagebind_model as m, "
                  "bindcli.imagebind as b; assert imagebind is b and imagebind.data is b.data and "
                  "m is b.imagebind_model is imagebind.imagebind_model; print(m.ModalityType.VISION)")
    assert same.stdout == "vision\n", same.stderr

    images = [str(MEDIA / n) for n in ("dog_image.jpg", "car_image.jpg", "bird_image.jpg")]
    sounds = [str(MEDIA / n) for n in ("dog_audio.wav", "car_audio.wav")]
    texts = ["a dog", "a car", "a bird singing"]
    queries = ["a dog barking", images[2], sounds[1]]
    done = run_in(throwaway, "-c", LANCEDB, str(FIXTURES / "public_config.json"), str(tmp_path / "db"),
                  json.dumps([images, sounds, texts]), json.dumps(queries))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)

    ours = raw_vectors(images + sounds, texts + queries[:1])
    assert sorted(found["stored"]) == sorted(images + sounds + texts)
    for data, vector in found["stored"].items():
        np.testing.assert_array_equal(np.float32(vector), ours[data])
    for query, hits in found["hits"].items():
        distances = {data: float(np.sum((ours[data] - ours[query]) ** 2)) for data in found["stored"]}
        assert [data for data, _ in hits] == sorted(distances, key=distances.get)
        np.testing.assert_allclose([d for _, d in hits], sorted(distances.values()), rtol=1e-4, atol=1e-4)

    # upstream's README example, its imports as upstream writes them, on the small model
    upstream = "\n".join(line.replace("bindcli.imagebind", "imagebind") for line in readme_example().splitlines())
    (tmp_path / ".assets").symlink_to(MEDIA)
    example = run_in(throwaway, "-c", SMALL_HUGE + upstream, str(FIXTURES / "public_config.json"), cwd=tmp_path)
    assert example.returncode == 0, example.stderr
    assert [line.split(":")[0] for line in example.stdout.splitlines() if ":" in line] == [
        "Vision x Text", "Audio x Text", "Vision x Audio"]

    removed = run_in(throwaway, "-m", "bindcli", "imagebind", "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not (site_packages / "imagebind").exists()
    assert not list(site_packages.glob("bindcli_imagebind_alias-*"))
    gone = run_in(throwaway, "-m", "bindcli", "imagebind", "status")
    assert gone.stdout.startswith("not importable here")
