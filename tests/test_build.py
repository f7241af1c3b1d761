# SPDX-License-Identifier: GPL-3.0-or-later
"""build.py's targets and per-build manifest (fast: no network, no Blender).

The heavy tests (tests/test_build_install.py) build the linux-x64 CPU zip once per module (downloads are cached in
``build_cache/``), install it into a throw-away Blender user folder, and run the bundled torch
with a "Blender-like" Python: a fresh interpreter that has numpy (as Blender's bundled Python
does) but no torch, scipy or soundfile of its own.  Whatever it imports of those can only come
from the wheels Blender unpacked into its extension site-packages.
"""

import sys
import tomllib

import pytest

from blender_harness import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
import build  # noqa: E402

sys.path.pop(0)

# --------------------------------------------------------------------------------------------
# fast: targets and manifest (no network, no Blender)


def test_targets_pick_the_right_torch_and_platform_tags():
    linux = build.Target("linux-x64")
    assert linux.torch_requirement() == "torch==2.13.0+cpu"
    assert linux.default_index_url() == build.PYTORCH_CPU_INDEX
    tags = linux.pip_platforms()
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux2014_x86_64" in tags
    assert not any("2_29" in tag or "2_31" in tag for tag in tags), "Blender 4.2+ guarantees glibc 2.28 only"
    assert build.Target("linux-x64", "cuda").torch_requirement() == "torch==2.13.0"
    windows = build.Target("windows-x64")
    assert windows.pip_platforms() == ["win_amd64"] and windows.default_index_url() == ""
    assert build.Target("windows-x64", "cuda").torch_requirement().endswith("+cu128")
    assert build.Target("macos-arm64").torch_requirement() == "torch==2.13.0"
    assert all("arm64" in t or "universal2" in t for t in build.Target("macos-arm64").pip_platforms())
    assert build.Target("macos-x64").torch_requirement() == "torch==2.2.2"
    args = build.Target("linux-x64", python="3.13").pip_target_args()
    assert args[args.index("--abi") + 1] == "cp313" and "--only-binary=:all:" in args
    with pytest.raises(SystemExit, match="no CUDA on macOS"):
        build.Target("macos-arm64", "cuda")
    with pytest.raises(SystemExit, match="Intel-mac"):
        build.Target("macos-x64", python="3.13")
    with pytest.raises(SystemExit):
        build.Target("linux-arm64")


def test_numpy_and_other_blender_bundled_packages_are_left_out():
    assert build.wheel_project("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.whl") in build.BLENDER_SHIPS
    assert build.wheel_project("Jinja2-3.1.6-py3-none-any.whl") == "jinja2"
    assert build.wheel_project("typing_extensions-4.16.0-py3-none-any.whl") == "typing-extensions"
    assert build.wheel_project("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl") not in build.BLENDER_SHIPS


@pytest.mark.parametrize("python, minimum, maximum", [("3.11", "4.2.0", "5.1.0"), ("3.13", "5.1.0", None)])
def test_bundle_manifest_sets_wheels_platforms_and_version_range(python, minimum, maximum):
    text = (REPO_ROOT / "blender_manifest.toml").read_text(encoding="utf-8")
    wheels = ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "musicnn-0.1.0-py3-none-any.whl"]
    data = tomllib.loads(build.bundle_manifest(text, build.Target("linux-x64", python=python), wheels))
    original = tomllib.loads(text)
    assert data["wheels"] == ["./wheels/" + name for name in wheels]
    assert data["platforms"] == ["linux-x64"]
    assert data["blender_version_min"] == minimum
    assert data.get("blender_version_max") == maximum
    for key in ("id", "version", "license", "permissions", "build"):
        assert data[key] == original[key]


def _tiny_wheel(folder, name, requires=(), tag="py3-none-any"):
    """A minimal wheel (pure Python unless ``tag`` says otherwise) whose METADATA declares ``requires``."""
    import zipfile
    dist_info = f"{name}-1.0.dist-info"
    metadata = "Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n{}".format(
        name, "".join(f"Requires-Dist: {r}\n" for r in requires))
    purelib = "true" if tag == "py3-none-any" else "false"
    files = {f"{name}.py": "", f"{dist_info}/METADATA": metadata,
             f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"}
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-1.0-{tag}.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return folder / f"{name}-1.0-{tag}.whl"


@pytest.mark.parametrize("platform, wanted", [("windows-x64", "winonly"), ("linux-x64", "linuxonly"),
                                              ("macos-arm64", "maconly")])
def test_dependency_markers_are_evaluated_for_the_target_platform(tmp_path, platform, wanted):
    """torch's nvidia-* requirements are Linux-only: a Windows build must not try to get them."""
    index, out = tmp_path / "index", tmp_path / "out"
    index.mkdir()
    _tiny_wheel(index, "app", ['linuxonly; platform_system == "Linux"', 'winonly; sys_platform == "win32"',
                               'maconly; platform_system == "Darwin" and platform_machine == "arm64"'])
    _tiny_wheel(index, wanted)   # only the target's own dependency exists: others would fail
    target = build.Target(platform)
    result = build._pip(target, "--no-index", "--find-links", str(index), "-d", str(out),
                        *target.pip_target_args(), "app")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["app-1.0-py3-none-any.whl", f"{wanted}-1.0-py3-none-any.whl"]


@pytest.mark.blender
@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_platform_zip_for_each_blender_python_builds_and_validates(tmp_path, python):
    """The per-build manifest of each Blender Python (3.13: Blender 5.1+) through Blender's own
    builder (``blender_ext.py build --split-platforms``) and validator, from the running Python's
    bpy (5.2's under .venv52). Stand-in wheels replace the download (torch for Python 3.13 comes
    from PyTorch's index only): one pure, one for the target's platform and Python."""
    import zipfile

    abi = "cp" + python.replace(".", "")
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheels = [_tiny_wheel(folder, "standin"), _tiny_wheel(folder, "native", tag=f"{abi}-{abi}-manylinux_2_28_x86_64")]
    target = build.Target("linux-x64", python=python)
    zip_path = build.build_platform_zip(target, tmp_path / "dist", cache_root=tmp_path / "cache", wheels=wheels)
    assert zip_path.name == f"traeumer-0.1.0-linux_x64-cpu-py{python.replace('.', '')}.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
    assert manifest["wheels"] == ["./wheels/" + wheel.name for wheel in wheels]
    assert manifest["platforms"] == ["linux-x64"]
    versions = build.PYTHON_TARGETS[python]
    assert manifest["blender_version_min"] == versions["min"]
    assert manifest.get("blender_version_max") == versions["max"]
    assert {"wheels/" + wheel.name for wheel in wheels} <= set(names)
    assert "LICENSES/THIRD-PARTY.md" in names and build.check_notices(zip_path) == []
    assert not any(name.startswith((".venv", "tests/", "build_cache/")) for name in names)
    assert "Success" in build.validate(zip_path)
