# SPDX-License-Identifier: GPL-3.0-or-later
"""The extension as a user gets it: built, validated, installed, enabled, saved and reopened."""

import subprocess
import sys
import zipfile

import pytest

from blender_harness import REPO_ROOT, SHARED_AUDIO, TEST_WORKER_PYTHON, build_extension_zip, run_in_blender

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    return build_extension_zip(tmp_path_factory.mktemp("dist"))


def test_manifest_and_zip_validate_with_blenders_validator(extension_zip):
    sys.path.insert(0, str(REPO_ROOT))
    import build
    sys.path.pop(0)
    assert "Success" in build.validate(REPO_ROOT)
    assert "Success" in build.validate(extension_zip)
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "traeumer_blender/__init__.py" in names
    assert not any(name.startswith(("tests/", ".venv", ".git/", "bench/")) for name in names)


def test_zip_installs_enables_disables_and_uninstalls_cleanly(extension_zip, tmp_path):
    result = run_in_blender(f"""
        import addon_utils
        from blender_support import install_zip, registered_names, torch_imported
        module = install_zip({str(extension_zip)!r})
        emit(installed=registered_names())
        addon_utils.disable(module, default_set=True)
        emit(disabled=registered_names())
        addon_utils.enable(module, default_set=True)
        emit(reenabled=registered_names())
        repo_index = [r.module for r in bpy.context.preferences.extensions.repos].index("user_default")
        assert bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="traeumer") == {{"FINISHED"}}
        emit(uninstalled=registered_names(),
             still_listed=module in bpy.context.preferences.addons,
             torch_loaded=torch_imported())
    """, tmp_path)
    everything = {"classes": ["TRAEUMER_PT_generate", "TRAEUMER_OT_use_active_strip", "TRAEUMER_PG_settings"],
                  "operator": True, "scene_property": True}
    nothing = {"classes": [], "operator": False, "scene_property": False}
    assert result["installed"] == everything
    assert result["disabled"] == nothing
    assert result["reenabled"] == everything
    assert result["uninstalled"] == nothing
    assert result["still_listed"] is False
    assert result["torch_loaded"] is False, "Blender's own process must never import torch"


def test_source_tree_runs_as_local_extension_repository(tmp_path):
    result = run_in_blender(f"""
        from blender_support import enable_from_source, registered_names
        module = enable_from_source({str(REPO_ROOT)!r})
        emit(registered=registered_names(), module=module)
    """, tmp_path)
    assert result["module"] == "bl_ext.traeumer_source.traeumer"
    assert result["registered"]["scene_property"] is True
    assert len(result["registered"]["classes"]) == 3


def test_every_path_property_takes_a_blend_relative_path_without_a_warning(tmp_path):
    """Blender 4.5+ warn ("does not support blend relative") when a path property without
    PATH_SUPPORTS_BLEND_RELATIVE gets a "//" value: every file and folder property of the
    extension (settings, tracks, labelling, preferences, operators) declares it."""
    result = run_in_blender(f"""
        import warnings
        from blender_support import enable_from_source
        module = enable_from_source({str(REPO_ROOT)!r})
        scene = bpy.context.scene

        def holders(data, depth=0):   # a property group and those it points to (one item per collection)
            yield data
            for prop in data.bl_rna.properties:
                if depth < 3 and prop.type == "POINTER" and prop.identifier != "rna_type":
                    value = getattr(data, prop.identifier)
                    if isinstance(value, bpy.types.PropertyGroup):
                        yield from holders(value, depth + 1)
                elif depth < 3 and prop.type == "COLLECTION" and hasattr(getattr(data, prop.identifier), "add"):
                    yield from holders(getattr(data, prop.identifier).add(), depth + 1)

        def is_path(prop):
            return prop.type == "STRING" and prop.subtype in ("FILE_PATH", "DIR_PATH")

        stored = []
        everything = [*holders(scene.traeumer), *holders(scene.traeumer_label),
                      bpy.context.preferences.addons[module].preferences]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for holder in everything:
                for prop in filter(is_path, holder.bl_rna.properties):
                    setattr(holder, prop.identifier, "//somewhere/file")
                    stored.append([type(holder).__name__ + "." + prop.identifier, getattr(holder, prop.identifier)])
        operators = {{}}
        for name in dir(bpy.ops.traeumer):
            for prop in filter(is_path, getattr(bpy.ops.traeumer, name).get_rna_type().properties):
                operators[name + "." + prop.identifier] = getattr(prop, "is_path_supports_blend_relative", None)
        emit(stored=stored, warnings=[str(w.message) for w in caught], operators=operators,
             version=list(bpy.app.version))
    """, tmp_path)
    assert result["warnings"] == []
    stored = dict(result["stored"])
    assert len(stored) >= 13 and set(stored.values()) == {"//somewhere/file"}
    assert {"TRAEUMER_PG_settings.output_dir", "TRAEUMER_PG_track.styles_path", "TRAEUMER_AP_preferences.worker_python",
            "TRAEUMER_PG_label_settings.mapper_file"} <= set(stored)
    assert {"label_export.filepath", "label_import.filepath", "label_add_audio.directory"} <= set(result["operators"])
    if tuple(result["version"]) >= (4, 5, 0):
        assert all(result["operators"].values()), result["operators"]
    assert "does not support blend relative" not in result["_output"]


def test_strip_span_is_exact_at_fractional_frame_rates(extension_zip, tmp_path):
    audio = SHARED_AUDIO / "hr-savino-ocean.ogg"
    result = run_in_blender(f"""
        from fractions import Fraction
        from blender_support import install_zip, extension_module
        module = install_zip({str(extension_zip)!r})
        timeline = extension_module(module, "addon.timeline")
        compat = extension_module(module, "addon.compat")
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = 30, 1.001
        strip = compat.new_sound_strip(scene, "Song", {str(audio)!r}, channel=1, frame_start=10)
        strip.frame_offset_start = 30   # trim the first second-ish
        scene.sequence_editor.active_strip = strip
        assert timeline.target_sound_strip(scene) == strip
        span = timeline.sound_strip_span(scene, strip)
        emit(fps=[span.fps.numerator, span.fps.denominator], start=span.frame_start, end=span.frame_end,
             seconds=[span.duration_seconds.numerator, span.duration_seconds.denominator],
             file=span.filepath, label=extension_module(module, "traeumer_blender.timing").describe_fps(span.fps))
        scene.traeumer.strip_name = "nothing by that name"
        emit(missing=timeline.target_sound_strip(scene) is None)
        assert bpy.ops.traeumer.use_active_strip() == {{"FINISHED"}}
        emit(chosen=scene.traeumer.strip_name)
    """, tmp_path)
    assert result["fps"] == [30000, 1001]
    assert result["start"] == 40
    frames = result["end"] - result["start"]
    assert frames > 0
    # duration = frames / (30000/1001) exactly, no float rounding
    assert result["seconds"][0] * 30000 == frames * 1001 * result["seconds"][1]
    assert result["file"] == str(audio)
    assert result["label"] == "29.970 fps (30000/1001)"
    assert result["missing"] is True
    assert result["chosen"] == "Song"


def test_saved_blend_reopens_with_settings(extension_zip, tmp_path):
    blend = tmp_path / "saved.blend"
    audio = SHARED_AUDIO / "hr-savino-ocean.ogg"
    run_in_blender(f"""
        from blender_support import install_zip, extension_module
        module = install_zip({str(extension_zip)!r})
        compat = extension_module(module, "addon.compat")
        scene = bpy.context.scene
        compat.new_sound_strip(scene, "Song", {str(audio)!r}, channel=2, frame_start=1)
        settings = scene.traeumer
        settings.strip_name = "Song"
        settings.smoothing_coarse, settings.truncation, settings.seed = 4.5, 0.7, 1234
        settings.device = "cpu"
        bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})
    """, tmp_path / "save")
    result = run_in_blender(f"""
        from blender_support import install_zip, extension_module
        module = install_zip({str(extension_zip)!r})
        bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
        scene = bpy.context.scene
        s = scene.traeumer
        timeline = extension_module(module, "addon.timeline")
        emit(strip=s.strip_name, coarse=s.smoothing_coarse, truncation=s.truncation, seed=s.seed,
             device=s.device, target=timeline.target_sound_strip(scene).name)
    """, tmp_path / "reopen")
    assert result["strip"] == "Song" and result["target"] == "Song"
    assert result["coarse"] == pytest.approx(4.5)
    assert result["truncation"] == pytest.approx(0.7)
    assert result["seed"] == 1234 and result["device"] == "cpu"


def test_engine_never_imports_bpy():
    """Every engine module, imported by the Python that runs the worker (Blender's own, or the
    test run's worker Python where Blender's has no torch)."""
    code = ("import sys, pkgutil, importlib, traeumer_blender\n"
            "for m in pkgutil.walk_packages(traeumer_blender.__path__, 'traeumer_blender.'):\n"
            "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
            "assert 'bpy' not in sys.modules, 'engine imported bpy'\n")
    subprocess.run([TEST_WORKER_PYTHON or sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=300)
