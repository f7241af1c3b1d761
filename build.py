#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the extension zip with Blender's own builder (``blender_ext.py`` from the bpy wheel).

    python build.py [--out dist/]            source-only zip (no wheels, any platform)
    python build.py --validate               validate the manifest only
    python build.py --platform linux-x64 [--torch cpu|cuda] [--python 3.11|3.13] [--out dist/]
                                             installable zip with every wheel the worker needs

A platform build downloads torch (and what it requires), scipy, soundfile and musicnn (its wheel
holds the encoder's TF1 weights; installed without its TensorFlow dependencies) for that platform
and Blender's Python, leaves out what Blender ships itself (numpy ...), stages a copy of the
source tree with those wheels in ``wheels/`` and a manifest that lists them, builds it with
``blender_ext.py build --split-platforms`` and validates the result.  The repository's own
``blender_manifest.toml`` and ``wheels/`` are never touched.

Downloads are cached in ``build_cache/`` (git-ignored): a second build with the same options
does not call pip at all.  Where torch comes from:

- linux-x64 cpu: the PyTorch CPU index (``--torch-index-url``, default
  https://download.pytorch.org/whl/cpu).  pip's own configuration (indexes, ``find-links``) is
  tried first, so a machine whose pip already offers ``torch==<version>+cpu`` needs no index.
- linux-x64 cuda: PyPI's Linux wheels (CUDA builds; they pull several GB of nvidia-* wheels).
- windows-x64 cpu / macos-arm64: PyPI (CPU builds; macOS wheels include MPS).
- windows-x64 cuda: a PyTorch CUDA index (``--torch-index-url``, default the cu128 one).
- macos-x64: PyTorch stopped publishing Intel-mac wheels after 2.2.2, so that is the default
  there (Python 3.11 only).
"""

import argparse
import email.parser
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "build_cache"
MANIFEST = "blender_manifest.toml"

TORCH_VERSION = "2.13.0"
MACOS_X64_TORCH_VERSION = "2.2.2"  # the last torch release with macOS x86_64 wheels
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYTORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu128"

# What the worker needs besides torch (and what each requires).  musicnn goes separately with
# --no-deps: its wheel declares TensorFlow 1.x, which is neither needed nor installable.
WORKER_REQUIREMENTS = ("scipy", "soundfile")
MUSICNN_REQUIREMENT = "musicnn==0.1.0"

# Blender's bundled Python ships these (the bpy wheel declares them: numpy, requests, cython,
# zstandard, and what requests needs).  Bundling a second numpy would shadow Blender's own.
BLENDER_SHIPS = {"numpy", "requests", "cython", "zstandard", "certifi", "charset-normalizer",
                 "idna", "urllib3"}

# Blender's Python per version range.  blender_version_max is exclusive.
PYTHON_TARGETS = {
    "3.11": {"min": "4.2.0", "max": "5.1.0", "numpy": "numpy>=1.26,<2"},
    "3.13": {"min": "5.1.0", "max": None, "numpy": "numpy>=1.26"},
}

PLATFORMS = ("linux-x64", "windows-x64", "macos-arm64", "macos-x64")

# Notes for bundled native libraries whose license differs from the wheel's own.
EXTRA_NOTES = {
    "soundfile": "bundles libsndfile (LGPL-2.1-or-later) as a shared library",
    "scipy": "bundles OpenBLAS and the GCC runtime libraries; see its LICENSE.txt",
    "torch": "bundles many third-party libraries; their notices are in its dist-info/licenses",
    "musicnn": "its TF1 checkpoints are the encoder's weights (ISC, see LICENSES/musicnn-ISC.txt)",
}


# --------------------------------------------------------------------------------------------
# Blender's builder


def blender_ext_script() -> Path:
    """Path of Blender's extension builder/validator inside the installed bpy package."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("build.py: the bpy module is not installed in this Python (run ./run.sh setup)")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise SystemExit("build.py: blender_ext.py not found inside the bpy package")


def run_blender_ext(*args: str) -> str:
    """Run the builder with plain Python; returns its output, exits with its message on failure."""
    result = subprocess.run(
        [sys.executable, str(blender_ext_script()), *args],
        capture_output=True, text=True, cwd=ROOT,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"build.py: blender_ext {args[0]} failed:\n{output}")
    return output


def validate(path: Path = ROOT) -> str:
    return run_blender_ext("validate", str(path))


def build_zip(out_dir: Path) -> Path:
    """Build the (platform-independent) zip into ``out_dir``, validate it, return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    before = set(out_dir.glob("*.zip"))
    run_blender_ext("build", "--source-dir", str(ROOT), "--output-dir", str(out_dir))
    built = sorted(set(out_dir.glob("*.zip")) - before) or sorted(out_dir.glob("traeumer-*.zip"))
    if not built:
        raise SystemExit(f"build.py: no zip appeared in {out_dir}")
    for zip_path in built:
        validate(zip_path)
    return built[-1]


# --------------------------------------------------------------------------------------------
# What to download for a target


@dataclass
class Target:
    platform: str            # Blender's name: linux-x64, windows-x64, macos-arm64, macos-x64
    torch: str = "cpu"       # cpu | cuda
    python: str = "3.11"     # Blender's Python: 3.11 (4.2-5.0) or 3.13 (5.1+)
    torch_version: str = ""  # "" = the default for the platform
    torch_index_url: str = "auto"  # auto | none | URL

    def __post_init__(self):
        if self.platform not in PLATFORMS:
            raise SystemExit(f"build.py: unknown platform {self.platform!r} (one of {', '.join(PLATFORMS)})")
        if self.python not in PYTHON_TARGETS:
            raise SystemExit(f"build.py: unknown Python {self.python!r} (3.11 or 3.13)")
        if self.torch not in ("cpu", "cuda"):
            raise SystemExit(f"build.py: --torch must be cpu or cuda, not {self.torch!r}")
        if self.torch == "cuda" and self.platform.startswith("macos"):
            raise SystemExit("build.py: there is no CUDA on macOS; use --torch cpu (it includes MPS)")
        if self.platform == "macos-x64" and self.python != "3.11" and not self.torch_version:
            raise SystemExit("build.py: torch has no Intel-mac wheels for Python 3.13 (the last, "
                             f"{MACOS_X64_TORCH_VERSION}, supports up to 3.12)")

    @property
    def tag(self) -> str:
        """Short name used for cache folders and zip names: linux_x64-cpu-py311."""
        return f"{self.platform.replace('-', '_')}-{self.torch}-py{self.python.replace('.', '')}"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def torch_requirement(self) -> str:
        version = self.torch_version
        if not version:
            if self.platform == "macos-x64":
                version = MACOS_X64_TORCH_VERSION
            elif self.platform == "linux-x64" and self.torch == "cpu":
                version = TORCH_VERSION + "+cpu"
            elif self.platform == "windows-x64" and self.torch == "cuda":
                version = TORCH_VERSION + "+cu128"
            else:
                version = TORCH_VERSION
        return f"torch=={version}"

    def default_index_url(self) -> str:
        if self.platform == "linux-x64" and self.torch == "cpu":
            return PYTORCH_CPU_INDEX
        if self.platform == "windows-x64" and self.torch == "cuda":
            return PYTORCH_CUDA_INDEX
        return ""  # PyPI has the right build

    def pip_platforms(self) -> list:
        """Wheel platform tags a Blender on this platform can load (pip does not widen them)."""
        if self.platform == "linux-x64":
            # Blender 4.2+ needs glibc 2.28 (VFX reference platform 2024), so do its wheels.
            return [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + [
                "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
        if self.platform == "windows-x64":
            return ["win_amd64"]
        if self.platform == "macos-arm64":
            return [f"macosx_{major}_0_{arch}" for major in range(14, 10, -1)
                    for arch in ("arm64", "universal2")]
        return ([f"macosx_{major}_0_{arch}" for major in range(14, 10, -1) for arch in ("x86_64", "universal2")]
                + [f"macosx_10_{minor}_{arch}" for minor in range(15, 8, -1) for arch in ("x86_64", "universal2")])

    def pip_target_args(self) -> list:
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp",
                "--abi", self.abi]
        for tag in self.pip_platforms():
            args += ["--platform", tag]
        return args

    def requirements(self) -> list:
        """What to resolve together; numpy is in the set only to pin a version Blender ships."""
        return [self.torch_requirement(), *WORKER_REQUIREMENTS, PYTHON_TARGETS[self.python]["numpy"]]


def wheel_project(filename: str) -> str:
    """Normalised project name of a wheel file (``Jinja2-3.1-py3-none-any.whl`` -> ``jinja2``)."""
    return re.sub(r"[-_.]+", "-", filename.split("-")[0]).lower()


# pip evaluates dependency markers (``; platform_system == "Linux"``) for the Python it runs on,
# not for --platform: cross-platform downloads would pull Linux-only dependencies (torch's
# nvidia-* wheels) and miss Windows-only ones.  This runs pip with the marker environment of the
# target; when pip's internals differ from what it expects, pip runs unpatched.
_PIP_FOR_TARGET = """\
import json, sys
target = json.loads(sys.argv.pop(1))
try:
    from pip._vendor.packaging import markers
    native = markers.default_environment
    markers.default_environment = lambda: {**native(), **target}
except (ImportError, AttributeError) as error:
    print(f"build.py: pip runs with this machine's markers ({error})", file=sys.stderr)
from pip._internal.cli.main import main
sys.exit(main())
"""

_MARKER_SYSTEMS = {
    "linux": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux"},
    "windows": {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows"},
    "macos": {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin"},
}
_MARKER_MACHINES = {"linux-x64": "x86_64", "windows-x64": "AMD64", "macos-arm64": "arm64", "macos-x64": "x86_64"}


def marker_environment(target: "Target") -> dict:
    """PEP 508 marker values of Blender's Python on the target platform."""
    return {
        **_MARKER_SYSTEMS[target.platform.split("-")[0]],
        "platform_machine": _MARKER_MACHINES[target.platform],
        "platform_release": "", "platform_version": "",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "python_version": target.python, "python_full_version": target.python + ".0",
        "implementation_version": target.python + ".0",
    }


def _pip(target: "Target", *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", _PIP_FOR_TARGET, json.dumps(marker_environment(target)),
               "download", "--disable-pip-version-check", "--progress-bar", "off", *args]
    print("build.py: pip download " + " ".join(args), flush=True)
    return subprocess.run(command, capture_output=True, text=True)


def download_wheels(target: Target, cache_root: Path = CACHE) -> list:
    """Wheels for ``target`` (cached), without what Blender ships; returns their paths."""
    key_text = json.dumps([target.tag, target.requirements(), MUSICNN_REQUIREMENT,
                           target.pip_target_args(), target.torch_index_url])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:10]
    folder = cache_root / "downloads" / f"{target.tag}-{key}"
    record = folder / "resolved.json"
    if record.exists():
        names = json.loads(record.read_text())["wheels"]
        if all((folder / name).is_file() for name in names):
            print(f"build.py: wheels for {target.tag} from the cache {folder}")
            return [folder / name for name in names]
    folder.mkdir(parents=True, exist_ok=True)

    def download(*args):
        """pip download into a fresh folder of its own; returns (pip's result, wheel paths)."""
        part = Path(tempfile.mkdtemp(dir=folder, prefix=".part-"))
        result = _pip(target, "-d", str(part), *target.pip_target_args(), *args)
        return result, sorted(part.glob("*.whl"))

    # musicnn: only its weights are used; its TensorFlow dependencies are not wanted.
    result, musicnn = download("--no-deps", MUSICNN_REQUIREMENT)
    if result.returncode != 0:
        raise SystemExit(f"build.py: could not download {MUSICNN_REQUIREMENT}:\n{result.stdout}{result.stderr}")

    # torch, scipy, soundfile and their requirements, resolved together.
    index_urls = {"auto": ["", target.default_index_url()], "none": [""]}.get(
        target.torch_index_url, [target.torch_index_url])
    failures = []
    for index_url in dict.fromkeys(index_urls):  # tries in order, without repeats
        extra = ["--extra-index-url", index_url] if index_url else []
        result, resolved = download(*extra, *target.requirements())
        if result.returncode == 0:
            break
        source = index_url or "pip's own configuration"
        failures.append(f"--- with {source}:\n{result.stderr[-3000:]}")
    else:
        raise SystemExit(f"build.py: could not download the wheels for {target.tag}:\n" + "\n".join(failures))

    torch_wheels = [path.name for path in resolved if wheel_project(path.name) == "torch"]
    if len(torch_wheels) != 1:
        raise SystemExit(f"build.py: expected one torch wheel, found {torch_wheels}")
    if target.torch == "cuda" and "+cpu" in torch_wheels[0]:
        raise SystemExit(f"build.py: asked for CUDA but pip offered {torch_wheels[0]}; pass "
                         "--torch-version and --torch-index-url for a CUDA build")
    wheels = [path for path in [*resolved, *musicnn] if wheel_project(path.name) not in BLENDER_SHIPS]
    for path in wheels:
        os.replace(path, folder / path.name)
    for part in folder.glob(".part-*"):
        shutil.rmtree(part, ignore_errors=True)
    names = sorted(path.name for path in wheels)
    record_part = record.with_suffix(f".{os.getpid()}")
    record_part.write_text(json.dumps({"requirements": target.requirements(), "wheels": names}, indent=1))
    os.replace(record_part, record)
    return [folder / name for name in names]


# --------------------------------------------------------------------------------------------
# Staging: a copy of the source tree with wheels and a per-build manifest

# Never copied into the staging tree (big, generated, or not part of the extension).
_STAGE_SKIP_TOP = {".git", ".venv", ".venv45", ".venv52", "build_cache", "dist", "wheels", "demo_out", "out",
                   "tests", "bench", ".ci", ".pytest_cache"}
_STAGE_SKIP_ANY = {"__pycache__", ".pytest_cache", ".git"}


def stage_source(stage: Path) -> None:
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for entry in sorted(ROOT.iterdir()):
        if entry.name in _STAGE_SKIP_TOP or entry.suffix == ".zip":
            continue
        if entry.is_dir():
            if (entry / "pyvenv.cfg").exists():
                continue  # somebody's virtual environment
            shutil.copytree(entry, stage / entry.name, symlinks=False,
                            ignore=shutil.ignore_patterns(*_STAGE_SKIP_ANY, "*.pyc"))
        elif entry.is_file():
            shutil.copy2(entry, stage / entry.name)


def bundle_manifest(text: str, target: Target, wheel_names: list) -> str:
    """The repository's manifest text with ``wheels``, ``platforms`` and the version range."""
    data = tomllib.loads(text)
    for key in ("wheels", "platforms", "blender_version_max"):
        if key in data:
            raise SystemExit(f"build.py: {MANIFEST} must not set {key!r}: build.py writes it per build")
    versions = PYTHON_TARGETS[target.python]
    lines = [f'blender_version_min = "{versions["min"]}"']
    if versions["max"]:
        lines.append(f'blender_version_max = "{versions["max"]}"')
    lines.append(f'platforms = ["{target.platform}"]')
    lines.append("wheels = [")
    lines += [f'  "./wheels/{name}",' for name in wheel_names]
    lines.append("]")
    new_text, count = re.subn(r"(?m)^blender_version_min\s*=.*$", lambda _: "\n".join(lines), text)
    if count != 1:
        raise SystemExit(f"build.py: {MANIFEST} needs exactly one top-level blender_version_min line")
    parsed = tomllib.loads(new_text)
    assert parsed["wheels"] == [f"./wheels/{name}" for name in wheel_names], "manifest rewrite went wrong"
    return new_text


def third_party_notices(wheels: list, target: Target) -> str:
    """A markdown list of the bundled wheels, their licenses and where their notices are."""
    rows = []
    for path in wheels:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            meta_name = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            meta = email.parser.Parser().parsestr(archive.read(meta_name).decode("utf-8", "replace"))
        license_text = meta.get("License-Expression") or ""
        if not license_text:
            classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                           if c.startswith("License ::")]
            short = (meta.get("License") or "").strip().splitlines()
            license_text = ", ".join(classifiers) or (short[0][:80] if short else "see the wheel")
        dist_info = meta_name.split("/")[0]
        notices = [n for n in names if n.startswith(dist_info + "/") and
                   re.search(r"(LICEN[CS]E|COPYING|NOTICE)", n.rsplit("/", 1)[-1], re.I)]
        where = f"`{dist_info}/` ({len(notices)} license file{'s' if len(notices) != 1 else ''})"
        note = EXTRA_NOTES.get(wheel_project(path.name), "")
        rows.append(f"| {meta['Name']} | {meta['Version']} | {license_text} | {where} | {note} |")
    return "\n".join([
        "# Third-party software in this build",
        "",
        f"This zip ({target.tag}) bundles the wheels below in `wheels/`. Blender unpacks them into",
        "its shared extension site-packages; each wheel carries its full license texts in its",
        "`*.dist-info` folder, which is unpacked with it. TräumerAI itself is GPL-3.0-or-later",
        "(`LICENSE`).",
        "",
        "| project | version | license | notices | note |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])


REQUIRED_NOTICES = ("LICENSE", "LICENSES/musicnn-ISC.txt", "LICENSES/THIRD-PARTY.md")


def check_notices(zip_path: Path) -> list:
    """License files a bundled zip must carry; returns what is missing."""
    names = set(zipfile.ZipFile(zip_path).namelist())
    missing = [name for name in REQUIRED_NOTICES if name not in names]
    if any(n.startswith("examples/") for n in names) and "examples/LICENSE.md" not in names:
        missing.append("examples/LICENSE.md")
    return missing


def build_platform_zip(target: Target, out_dir: Path, cache_root: Path = CACHE,
                       strict_notices: bool = True, wheels: list = None) -> Path:
    """Download, stage, build with ``--split-platforms``, validate; returns the zip's path.

    ``wheels`` (paths) replaces the download: tests build with stand-in wheels where the real
    ones cannot be had (torch for Python 3.13 comes from PyTorch's index only)."""
    wheels = download_wheels(target, cache_root) if wheels is None else [Path(w) for w in wheels]
    # A staging folder of its own per build: several builds (or test runs) may run at once.
    (cache_root / "stage").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root / "stage", prefix=target.tag + "-") as staging:
        stage = Path(staging) / "traeumer"
        stage_source(stage)
        (stage / "wheels").mkdir()
        for wheel in wheels:
            try:
                os.link(wheel, stage / "wheels" / wheel.name)
            except OSError:
                shutil.copy2(wheel, stage / "wheels" / wheel.name)
        manifest_text = (ROOT / MANIFEST).read_text(encoding="utf-8")
        (stage / MANIFEST).write_text(bundle_manifest(manifest_text, target, [w.name for w in wheels]),
                                      encoding="utf-8")
        (stage / "LICENSES").mkdir(exist_ok=True)
        (stage / "LICENSES" / "THIRD-PARTY.md").write_text(third_party_notices(wheels, target), encoding="utf-8")

        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"build.py: building {target.tag} with blender_ext --split-platforms", flush=True)
        run_blender_ext("build", "--source-dir", str(stage), "--output-dir", staging, "--split-platforms")
        built = sorted(Path(staging).glob("*.zip"))
        if len(built) != 1:
            raise SystemExit(f"build.py: expected one zip for {target.platform}, got {[p.name for p in built]}")
        # traeumer-0.1.0-linux_x64.zip -> traeumer-0.1.0-linux_x64-cpu-py311.zip
        final = out_dir / f"{built[0].stem.rsplit('-', 1)[0]}-{target.tag}.zip"
        shutil.move(built[0], final)
    validate(final)
    missing = check_notices(final)
    if missing:
        message = f"build.py: {final.name} lacks license notices: {', '.join(missing)}"
        if strict_notices:
            raise SystemExit(message)
        print("WARNING " + message, file=sys.stderr)
    return final


def summarize(zip_path: Path) -> str:
    """Size and a short listing of a built zip."""
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
        manifest = tomllib.loads(archive.read(MANIFEST).decode("utf-8"))
    wheels = [i for i in infos if i.filename.startswith("wheels/") and i.filename.endswith(".whl")]
    others = [i for i in infos if i not in wheels]
    tops = sorted({i.filename.split("/")[0] + ("/" if "/" in i.filename else "") for i in others})
    lines = [
        f"{zip_path} {zip_path.stat().st_size / 1e6:.1f} MB, {len(infos)} files "
        f"({sum(i.file_size for i in infos) / 1e6:.1f} MB unpacked)",
        f"  Blender {manifest.get('blender_version_min')} .. {manifest.get('blender_version_max', '')} "
        f"(exclusive), platforms {manifest.get('platforms')}",
        f"  {len(wheels)} wheels ({sum(i.file_size for i in wheels) / 1e6:.1f} MB):",
        *(f"    {i.filename[7:]}  {i.file_size / 1e6:.1f} MB" for i in sorted(wheels, key=lambda i: -i.file_size)),
        f"  {len(others)} other files: {' '.join(tops)}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--validate", action="store_true", help="only validate the manifest")
    parser.add_argument("--platform", action="append", choices=PLATFORMS,
                        help="build an installable zip with bundled wheels for this platform (repeatable)")
    parser.add_argument("--torch", default="cpu", choices=("cpu", "cuda"), help="torch build (default cpu)")
    parser.add_argument("--python", default="3.11", choices=tuple(PYTHON_TARGETS),
                        help="Blender's Python: 3.11 for Blender 4.2-5.0 (default), 3.13 for 5.1+")
    parser.add_argument("--torch-version", default="",
                        help=f"exact torch version, local tag included (default {TORCH_VERSION}, "
                             f"+cpu on linux-x64 cpu, {MACOS_X64_TORCH_VERSION} on macos-x64)")
    parser.add_argument("--torch-index-url", default="auto",
                        help="extra package index for torch: 'auto' (default) tries pip's own "
                             f"configuration first, then PyTorch's index for the build "
                             f"({PYTORCH_CPU_INDEX} for linux cpu); 'none' only pip's configuration")
    parser.add_argument("--cache", type=Path, default=CACHE, help="download cache (default build_cache/)")
    parser.add_argument("--allow-missing-notices", action="store_true",
                        help="warn instead of failing when a license notice is missing (never for releases)")
    args = parser.parse_args(argv)
    if args.validate:
        print(validate().strip())
        return 0
    if not args.platform:
        zip_path = build_zip(args.out)
        print(f"{zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB)")
        return 0
    for platform in dict.fromkeys(args.platform):
        target = Target(platform, args.torch, args.python, args.torch_version, args.torch_index_url)
        zip_path = build_platform_zip(target, args.out, args.cache,
                                      strict_notices=not args.allow_missing_notices)
        print(summarize(zip_path), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
