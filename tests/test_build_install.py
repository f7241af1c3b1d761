# SPDX-License-Identifier: GPL-3.0-or-later
"""build.py end to end: the linux-x64 CPU zip, installed and used the way a user does.

The zip is built once per module (downloads are cached in ``build_cache/``), installed into a
throw-away Blender user folder with ``package_install_files``, and its bundled torch is run by a
"Blender-like" Python: a fresh interpreter that has numpy (as Blender's bundled Python does) but
no torch, scipy or soundfile of its own.  Whatever it imports of those can only come from the
wheels Blender unpacked into its extension site-packages.
"""

import hashlib
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from blender_harness import REPO_ROOT, SHARED_AUDIO, run_in_blender

sys.path.insert(0, str(REPO_ROOT))
import build  # noqa: E402

sys.path.pop(0)

pytestmark = [pytest.mark.blender, pytest.mark.slow]

AUDIO = SHARED_AUDIO / "hr-savino-ocean.ogg"

# The zip built here is the Python 3.11 one (Blender 4.2-5.0): Blender 5.1+ (Python 3.13) refuses
# it, and its own zip needs torch's CPU wheel for Python 3.13, which comes from PyTorch's index
# (not reachable from this project's machines). There the installed-zip tests are skipped; the
# build tests still run with that Blender's builder, and test_build.py builds and validates a
# Python 3.13 zip with stand-in wheels.
needs_python_311_blender = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="installs the Python 3.11 zip, which Blender 5.1+ (Python 3.13) refuses; no torch wheel "
           "for Python 3.13 to build that Blender's zip")


# --------------------------------------------------------------------------------------------
# heavy: the linux-x64 CPU zip, built once per module


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def linux_cpu_zip(tmp_path_factory):
    manifest_before = _digest(REPO_ROOT / "blender_manifest.toml")
    wheels_before = sorted(p.name for p in (REPO_ROOT / "wheels").iterdir())
    target = build.Target("linux-x64", "cpu", "3.11")
    # Notices are asserted by their own test; a missing one must not hide the others' results.
    zip_path = build.build_platform_zip(target, tmp_path_factory.mktemp("dist"), strict_notices=False)
    assert _digest(REPO_ROOT / "blender_manifest.toml") == manifest_before, "build.py changed the repo's manifest"
    assert sorted(p.name for p in (REPO_ROOT / "wheels").iterdir()) == wheels_before, "build.py wrote into wheels/"
    return zip_path


@pytest.fixture(scope="module")
def blender_like_python(tmp_path_factory):
    """A Python 3.11 with numpy (as Blender's bundled Python has) and nothing else.

    A fresh venv of the base interpreter (not of the test's venv, which has torch) plus a
    ``.pth`` file that adds a folder holding only links to the running numpy.
    """
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not base.exists():
        pytest.skip(f"no base interpreter at {base}")
    root = tmp_path_factory.mktemp("blender_python")
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    import numpy
    numpy_dir = Path(numpy.__file__).parent
    bundled = root / "bundled"
    bundled.mkdir()
    for item in numpy_dir.parent.iterdir():
        if item.name == "numpy" or item.name == "numpy.libs" or (
                item.name.startswith("numpy-") and item.name.endswith(".dist-info")):
            os.symlink(item, bundled / item.name)
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip()
    Path(site, "blender_bundled.pth").write_text(str(bundled) + "\n")
    probe = subprocess.run(
        [str(python), "-c", "import numpy, importlib.util as u; "
                            "print([u.find_spec(m) is None for m in ('torch', 'scipy', 'soundfile', 'musicnn')])"],
        capture_output=True, text=True, env=_clean_env())
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[True, True, True, True]", "the Blender-like Python must not have torch itself"
    return python


def _clean_env(**extra) -> dict:
    """The environment of a process Blender starts, without the test venv's traces."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def _installed(zip_path: Path, user_dir: Path) -> dict:
    """Install + enable the zip in a fresh Blender user folder; return where things landed."""
    return run_in_blender(f"""
        import os, sys
        from blender_support import install_zip, registered_names, torch_imported
        module = install_zip({str(zip_path)!r})
        version = "python{{}}.{{}}".format(*sys.version_info[:2])
        site = os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib", version, "site-packages")
        emit(module=module, site=site, ext_dir=os.path.dirname(sys.modules[module].__file__),
             site_listing=sorted(os.listdir(site)) if os.path.isdir(site) else [],
             site_on_path=site in sys.path, registered=registered_names(),
             torch_in_blender=torch_imported(), blender=bpy.app.version_string)
    """, user_dir, timeout=600)


def test_linux_cpu_zip_bundles_the_workers_wheels_and_validates(linux_cpu_zip):
    assert linux_cpu_zip.name == "traeumer-0.1.0-linux_x64-cpu-py311.zip"
    assert "Success" in build.validate(linux_cpu_zip)
    with zipfile.ZipFile(linux_cpu_zip) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
    wheels = sorted(n[len("wheels/"):] for n in names if n.startswith("wheels/"))
    projects = {build.wheel_project(name) for name in wheels}
    assert {"torch", "scipy", "soundfile", "musicnn", "sympy", "filelock", "cffi"} <= projects
    assert not projects & build.BLENDER_SHIPS, "numpy and friends come with Blender"
    assert not any("tensorflow" in p for p in projects), "never TensorFlow"
    torch_wheel = next(name for name in wheels if name.startswith("torch-"))
    assert "+cpu" in torch_wheel and "manylinux" in torch_wheel and "cp311" in torch_wheel
    assert manifest["wheels"] == ["./wheels/" + name for name in wheels]
    assert manifest["platforms"] == ["linux-x64"]
    assert (manifest["blender_version_min"], manifest["blender_version_max"]) == ("4.2.0", "5.1.0")
    assert "__init__.py" in names and "traeumer_blender/__init__.py" in names
    assert "LICENSE" in names and "LICENSES/THIRD-PARTY.md" in names
    assert not any(n.startswith(("tests/", ".venv", "build_cache/", "dist/", ".git/")) for n in names)
    summary = build.summarize(linux_cpu_zip)
    assert "MB" in summary and torch_wheel in summary


def test_linux_cpu_zip_carries_the_license_notices(linux_cpu_zip):
    with zipfile.ZipFile(linux_cpu_zip) as archive:
        names = set(archive.namelist())
        gpl = archive.read("LICENSE").decode("utf-8")
        third_party = archive.read("LICENSES/THIRD-PARTY.md").decode("utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in gpl and "Version 3, 29 June 2007" in gpl
    assert "| musicnn | 0.1.0 | ISC" in third_party and "| torch | 2.13.0+cpu |" in third_party
    assert build.check_notices(linux_cpu_zip) == [], "missing license notices in the zip"
    assert "LICENSES/musicnn-ISC.txt" in names
    if any(n.startswith("examples/") for n in names):
        assert "examples/LICENSE.md" in names


def test_second_build_uses_the_download_cache(linux_cpu_zip, tmp_path, capsys):
    again = build.build_platform_zip(build.Target("linux-x64"), tmp_path, strict_notices=False)
    output = capsys.readouterr().out
    assert "from the cache" in output and "pip download" not in output
    assert again.name == linux_cpu_zip.name


@needs_python_311_blender
def test_installed_zip_runs_torch_from_its_wheels_in_a_python_without_torch(
        linux_cpu_zip, blender_like_python, tmp_path):
    installed = _installed(linux_cpu_zip, tmp_path / "installed")
    site, ext_dir = installed["site"], installed["ext_dir"]
    assert installed["module"] == "bl_ext.user_default.traeumer"
    assert installed["registered"]["scene_property"] is True
    assert installed["site_on_path"] is True
    assert installed["torch_in_blender"] is False, "Blender's own process must never import torch"
    listing = set(installed["site_listing"])
    assert {"torch", "scipy", "musicnn", "soundfile.py", "_soundfile_data"} <= listing
    assert not any(name == "numpy" or name.startswith("numpy-") for name in listing)
    assert ext_dir.startswith(str(tmp_path)) and site.startswith(str(tmp_path))

    # Started the way the extension starts its worker: PYTHONPATH = the extension folder, and the
    # wheels' site-packages appended to sys.path by the worker (after the interpreter's own).
    check = r"""
import importlib.util, json, os, sys
from traeumer_blender.worker import use_extension_wheels
assert use_extension_wheels()
import numpy, scipy.signal, soundfile, torch, traeumer_blender
musicnn = importlib.util.find_spec("musicnn")
weights = os.path.join(musicnn.submodule_search_locations[0], "MTT_musicnn")
x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
y = torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3))
info = soundfile.info(sys.argv[1])
print(json.dumps({
    "torch": torch.__file__, "torch_version": torch.__version__, "scipy": scipy.__file__,
    "soundfile": soundfile.__file__, "numpy": numpy.__file__, "engine": traeumer_blender.__file__,
    "weights": sorted(os.listdir(weights)), "conv_shape": list(y.shape),
    "samplerate": info.samplerate, "sys_path": sys.path, "executable": sys.executable,
}))
"""
    env = _clean_env(PYTHONPATH=ext_dir, TRAEUMER_EXTENSION_WHEELS=site, TRAEUMER_CACHE_DIR=str(tmp_path / "cache"))
    completed = subprocess.run([str(blender_like_python), "-c", check, str(AUDIO)], capture_output=True,
                               text=True, env=env, cwd=ext_dir, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found["executable"] == str(blender_like_python)
    for name in ("torch", "scipy", "soundfile"):
        assert found[name].startswith(site + os.sep), f"{name} came from {found[name]}, not the installed wheels"
    assert found["torch_version"].endswith("+cpu")
    assert found["engine"].startswith(ext_dir + os.sep)
    assert not found["numpy"].startswith(site), "numpy must be Blender's own"
    assert ".index" in found["weights"] and any(w.startswith(".data-") for w in found["weights"])
    assert found["conv_shape"] == [1, 1, 14, 14]
    assert found["samplerate"] == 44100
    venv_site = str(Path(sys.prefix).resolve())
    assert not any(str(Path(p).resolve()).startswith(venv_site) for p in found["sys_path"] if p), \
        "the worker's Python must not see the developer's venv"


@needs_python_311_blender
def test_generate_from_audio_end_to_end_with_the_installed_wheels(linux_cpu_zip, blender_like_python, tmp_path):
    """A user's first Generate: zip installed, a sound strip, the operator, frames on disk.

    The worker runs on the Blender-like Python (no torch of its own, like Blender's bundled
    Python); while it is still alive its memory map shows which libtorch it loaded.
    """
    out_dir = tmp_path / "frames"
    result = run_in_blender(f"""
        import os, sys
        from blender_support import install_zip, extension_module
        module = install_zip({str(linux_cpu_zip)!r})
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.worker_python = {str(blender_like_python)!r}
        prefs.idle_timeout = 120.0
        compat = extension_module(module, "addon.compat")
        worker_client = extension_module(module, "addon.worker_client")
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = 2, 1.0
        strip = compat.new_sound_strip(scene, "Song", {str(AUDIO)!r}, channel=1, frame_start=1)
        strip.frame_final_duration = 8           # 4 s of the piece at 2 fps
        scene.sequence_editor.active_strip = strip
        settings = scene.traeumer
        settings.resolution, settings.device, settings.seed = 32, "cpu", 7
        settings.output_dir = {str(out_dir)!r}
        outcome = bpy.ops.traeumer.generate()
        client = worker_client.current_client()
        libtorch, mapped = [], []
        if client is not None:
            with open(f"/proc/{{client.pid}}/maps") as maps:
                mapped = sorted({{line.split()[-1] for line in maps if ".so" in line.split()[-1]}})
            libtorch = [path for path in mapped if "libtorch" in path]
        track = settings.tracks.get("Song")
        cache = worker_client.user_cache_dir()
        cached = sorted(os.path.relpath(os.path.join(d, f), cache) for d, _, fs in os.walk(cache) for f in fs)
        extensions = bpy.utils.user_resource("EXTENSIONS")
        installed_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(extensions) for f in fs)
        emit(cache=cache, cached=cached, installed_mb=installed_bytes / 1e6)
        emit(outcome=sorted(outcome), worker_python=client.argv[0] if client else None,
             libtorch=libtorch, mapped=mapped, state=track.state if track else None,
             message=track.message if track else None,
             frame_count=track.frame_count if track else 0,
             site=os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local"))
        worker_client.stop_worker()
        # uninstalling takes the unpacked wheels away again
        site = os.path.join(extensions, ".local", "lib", "python{{}}.{{}}".format(*sys.version_info[:2]), "site-packages")
        repos = [r.module for r in bpy.context.preferences.extensions.repos]
        removed = bpy.ops.extensions.package_uninstall(repo_index=repos.index("user_default"), pkg_id="traeumer")
        emit(uninstalled=sorted(removed), site_after_uninstall=sorted(os.listdir(site)) if os.path.isdir(site) else [])
    """, tmp_path, timeout=900, env={"PYTHONPATH": "", "PYTHONNOUSERSITE": "1", "TRAEUMER_CACHE_DIR": ""})
    print(result["_output"][-6000:])
    assert result["outcome"] == ["FINISHED"], result["_output"][-4000:]
    assert result["state"] == "DONE", result["message"]
    assert result["worker_python"] == str(blender_like_python)
    assert result["libtorch"], "the worker did not load libtorch"
    for library in result["libtorch"]:
        assert library.startswith(result["site"] + os.sep), f"worker loaded {library}, not the installed wheels"
    # nothing native from the developer's venv but numpy (the stand-in for Blender's own numpy)
    venv = str(Path(sys.prefix).resolve()) + os.sep
    from_venv = [path for path in result["mapped"] if path.startswith(venv) and "/numpy" not in path]
    assert not from_venv, f"the worker loaded libraries from the developer's venv: {from_venv}"
    # first run: derived data (the converted encoder weights) lands in the extension's user folder
    assert result["cache"].startswith(str(tmp_path)) and os.sep + ".user" + os.sep in result["cache"]
    assert any(name.startswith("encoders" + os.sep) and name.endswith(".pt") for name in result["cached"]), \
        result["cached"]
    print(f"installed extension with its wheels: {result['installed_mb']:.0f} MB")
    assert result["uninstalled"] == ["FINISHED"]
    assert not {"torch", "scipy", "musicnn"} & set(result["site_after_uninstall"]), result["site_after_uninstall"]
    frames = sorted(out_dir.glob("*.png"))
    assert len(frames) == result["frame_count"] == 8
    with open(frames[0], "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    # the scene's shape (16:9 for the default 1920 x 1080) at 32 px high
    assert int.from_bytes(header[16:20], "big") == 56 and int.from_bytes(header[20:24], "big") == 32
