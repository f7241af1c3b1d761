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


def _tiny_wheel(folder, name, requires=()):
    """A minimal pure-Python wheel whose METADATA declares ``requires``."""
    import zipfile
    dist_info = f"{name}-1.0.dist-info"
    metadata = "Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n{}".format(
        name, "".join(f"Requires-Dist: {r}\n" for r in requires))
    files = {f"{name}.py": "", f"{dist_info}/METADATA": metadata,
             f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


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
