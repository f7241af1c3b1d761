#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the extension zip with Blender's own builder (``blender_ext.py`` from the bpy wheel).

    python build.py [--out dist/]            build and validate the zip from the source tree
    python build.py --validate               validate the manifest only
"""

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--validate", action="store_true", help="only validate the manifest")
    args = parser.parse_args(argv)
    if args.validate:
        print(validate().strip())
        return 0
    zip_path = build_zip(args.out)
    print(f"{zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
