# SPDX-License-Identifier: GPL-3.0-or-later
"""Scripted TräumerAI runs: Generate from audio in headless Blender.

    blender -b [file.blend] -P traeumer_run.py -- --audio song.mp3 --out DIR [--blend out.blend]
            [--model FILE] [--fps 30] [--render out.mp4] [options]
    python traeumer_run.py -- ...            (the same with the bpy module; --open FILE.blend)

Musical motion takes the engine's options (--pulse, --pulse-bands, --attack, --release,
--no-cuts, --crossfade, --hold, --no-motion) and --beat-markers.

With ``--audio`` the song becomes a sound strip on channel 1 at the scene's first frame (and the
scene's frame range follows it); without it the open file's sound strip is used (``--strip``,
else the active or the only sound strip). Background Blender has no timers or modal operators,
so this script drives the extension's worker in a blocking loop and prints progress lines.

Exit status: 0 done, 1 the job failed, 2 bad arguments or input, 3 cancelled (timeout).
It uses the installed extension when it is enabled, else the extension folder this script is in
(a source checkout or an installed but disabled copy).
"""

import argparse
import dataclasses
import importlib
import importlib.util
import os
import sys
import time

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION_ID = "traeumer"
CHECKOUT_MODULE = "traeumer_checkout"


class RunError(Exception):
    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def script_arguments(argv):
    return argv[argv.index("--") + 1:] if "--" in argv else []


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="blender -b [file.blend] -P traeumer_run.py --",
        description="Generate StyleGAN2 frames from music in headless Blender.")
    parser.add_argument("--audio", help="audio file to add as a sound strip (else the file's sound strip)")
    parser.add_argument("--out", help="output folder of frames and styles (default //traeumer/<strip>/)")
    parser.add_argument("--blend", help="save the resulting scene as this .blend (saved before generating, "
                                        "so frame paths are stored relative to it)")
    parser.add_argument("--open", dest="open_blend", help="open this .blend first (for the bpy module)")
    parser.add_argument("--strip", help="name of the sound strip to use in the open file")
    parser.add_argument("--model", help="StyleGAN2 checkpoint (default: the built-in generator)")
    parser.add_argument("--mapper", help="mapping file (default: zero-label mapping)")
    parser.add_argument("--fps", help="scene frame rate, e.g. 30, 29.97, 30000/1001 (default: the scene's)")
    parser.add_argument("--start", type=float, default=0.0, help="skip this many seconds of the audio")
    parser.add_argument("--duration", type=float, help="use only this many seconds of the audio")
    parser.add_argument("--resolution", "--size", dest="resolution", type=int,
                        help="frame size in pixels (default: the model's own)")
    parser.add_argument("--aspect", help="frame shape: scene (default: the scene's render size), 16:9, 9:16, "
                        "1:1 or W:H; the height is the resolution")
    parser.add_argument("--draft", action="store_true",
                        help="draft frames of the whole song first (as the panel does; off for scripts, "
                             "where nobody scrubs while it runs)")
    parser.add_argument("--seed", type=int, help="seed of the zero-label mapping")
    parser.add_argument("--truncation", type=float, help="truncation ψ (1 = none)")
    parser.add_argument("--smoothing", help="smoothing windows in seconds: coarse,middle,fine (e.g. 3,2,0.3)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="where the generator runs")
    parser.add_argument("--render", help="render the Sequencer (frames + music) to this MP4 with Blender")
    parser.add_argument("--timeout", type=float, help="cancel the job after this many seconds")
    motion = parser.add_argument_group("musical motion (as the engine's generate command; on by default)")
    motion.add_argument("--pulse", metavar="C,M,F", help="pulse amount of the coarse,middle,fine layers, 0..1")
    motion.add_argument("--pulse-bands", metavar="B,B,B",
                        help="band driving each group: full, low, mid or high (e.g. low,low,high)")
    motion.add_argument("--attack", type=float, help="pulse attack (s)")
    motion.add_argument("--release", type=float, help="pulse release (s)")
    motion.add_argument("--no-cuts", action="store_true", help="smooth across section boundaries")
    motion.add_argument("--crossfade", type=float, help="crossfade at a cut (s)")
    motion.add_argument("--hold", choices=("none", "beat", "bar"), help="hold the look per beat or per bar")
    motion.add_argument("--no-motion", action="store_true", help="no pulse, no cuts, no hold, no markers")
    motion.add_argument("--beat-markers", action="store_true", help="also mark every beat on the timeline")
    camera = parser.add_argument_group("camera (StyleGAN3 models; as the engine's generate command)")
    camera.add_argument("--camera", choices=("still", "music"), help="still (default), or drift and nudge with the music")
    camera.add_argument("--camera-drift", type=float, help="radius of the slow drift with the tempo (frame heights)")
    camera.add_argument("--camera-nudge", type=float, help="push on each downbeat (frame heights)")
    camera.add_argument("--camera-x", type=float, help="where the camera looks, to the right (frame heights)")
    camera.add_argument("--camera-y", type=float, help="where the camera looks, upward (frame heights)")
    camera.add_argument("--camera-rotation", type=float, help="camera roll (degrees, counter-clockwise)")
    return parser.parse_args(argv)


# --- the extension --------------------------------------------------------------------------------

def load_extension():
    """The extension's package: enabled install, else this script's own folder."""
    for name in list(bpy.context.preferences.addons.keys()):
        if name.startswith("bl_ext.") and name.rsplit(".", 1)[-1] == EXTENSION_ID:
            module = importlib.import_module(name)
            if os.path.dirname(os.path.abspath(module.__file__)) == HERE or not _is_extension_root(HERE):
                return module
            # the script of another copy (a checkout) was run: that copy runs, the installed one
            # is switched off for this run only (the preferences are not changed)
            import addon_utils
            addon_utils.disable(name, default_set=False)
    # this folder inside a known extension repository: enable it the regular way
    parent = os.path.dirname(HERE)
    if os.path.basename(HERE) == EXTENSION_ID:
        for repo in bpy.context.preferences.extensions.repos:
            directory = getattr(repo, "directory", "") or ""
            if directory and os.path.realpath(directory) == os.path.realpath(parent):
                import addon_utils
                name = f"bl_ext.{repo.module}.{EXTENSION_ID}"
                try:
                    bpy.ops.extensions.repo_refresh_all()
                except (RuntimeError, AttributeError):
                    pass
                # default_set=False: enable for this run only, the user's preferences stay as they are
                module = addon_utils.enable(name, default_set=False)
                if module is not None:
                    return module
    if not _is_extension_root(HERE):
        raise RunError(f"no TräumerAI extension is enabled and {HERE} is not the extension's folder")
    # a source checkout: import it as a package and register it directly
    if CHECKOUT_MODULE in sys.modules:
        return sys.modules[CHECKOUT_MODULE]
    spec = importlib.util.spec_from_file_location(CHECKOUT_MODULE, os.path.join(HERE, "__init__.py"),
                                                  submodule_search_locations=[HERE])
    module = importlib.util.module_from_spec(spec)
    sys.modules[CHECKOUT_MODULE] = module
    spec.loader.exec_module(module)
    module.register()
    return module


def _is_extension_root(folder):
    return os.path.isfile(os.path.join(folder, "blender_manifest.toml")) and \
        os.path.isfile(os.path.join(folder, "__init__.py"))


# --- the scene ---------------------------------------------------------------------------------------

def set_scene_fps(scene, text, ext_timing=None):
    from fractions import Fraction

    text = str(text).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        fps = Fraction(int(num), int(den))
    else:
        fps = Fraction(text)
        for base in (24, 30, 48, 60, 120):  # 29.97 & co. mean n*1000/1001
            exact = Fraction(base * 1000, 1001)
            if fps != base and abs(fps - exact) <= Fraction(1, 200):
                fps = exact
    if fps <= 0:
        raise RunError(f"bad frame rate {text}")
    if fps.denominator == 1:
        scene.render.fps, scene.render.fps_base = fps.numerator, 1.0
    elif fps * 1001 / 1000 == int(fps * 1001 / 1000):
        scene.render.fps, scene.render.fps_base = int(fps * 1001 / 1000), 1.001
    else:
        scene.render.fps = round(fps)
        scene.render.fps_base = round(fps) / float(fps)


def add_sound_strip(ext, scene, args):
    compat = importlib.import_module(ext.__name__ + ".addon.compat")
    audio = os.path.abspath(args.audio)
    if not os.path.isfile(audio):
        raise RunError(f"audio file not found: {audio}")
    if args.fps:
        set_scene_fps(scene, args.fps)
    name = os.path.splitext(os.path.basename(audio))[0][:60] or "Audio"
    try:
        strip = compat.new_sound_strip(scene, name, audio, channel=1, frame_start=scene.frame_start)
    except RuntimeError as error:
        raise RunError(f"Blender cannot read {audio} as audio: {error}") from None
    fps = compat.scene_fps(scene)
    first_frame = scene.frame_start
    if args.start:
        strip.frame_offset_start = round(args.start * fps)
        strip.frame_start = first_frame - strip.frame_offset_start  # the visible part starts the scene
    if args.duration:
        frames = max(1, round(args.duration * fps))
        if frames < strip.frame_final_duration:
            strip.frame_final_duration = frames
    visible_start, visible_end = compat.strip_visible_range(strip)
    scene.frame_start = visible_start
    scene.frame_end = visible_end - 1
    scene.sequence_editor.active_strip = strip
    scene.traeumer.strip_name = strip.name
    return strip


def choose_strip(ext, scene, args):
    compat = importlib.import_module(ext.__name__ + ".addon.compat")
    timeline = importlib.import_module(ext.__name__ + ".addon.timeline")
    if args.strip:
        scene.traeumer.strip_name = args.strip
    strip = timeline.target_sound_strip(scene)
    if strip is None and not scene.traeumer.strip_name:
        sounds = [s for s in compat.all_strips(scene) if compat.is_sound_strip(s)]
        if len(sounds) == 1:
            strip = sounds[0]
            scene.traeumer.strip_name = strip.name
    if strip is None:
        raise RunError("no sound strip to work on: pass --audio FILE, or --strip NAME for the open file")
    return strip


def apply_settings(scene, args):
    settings = scene.traeumer
    if args.out:
        settings.output_dir = os.path.abspath(args.out)
    if args.model:
        settings.model_path = os.path.abspath(args.model)
    if args.mapper:
        settings.mapper_path = os.path.abspath(args.mapper)
    if args.resolution is not None:
        settings.resolution = args.resolution
    settings.use_draft = bool(args.draft)
    if args.aspect is not None:
        set_aspect(settings, args.aspect)
    if args.seed is not None:
        settings.seed = args.seed
    if args.truncation is not None:
        settings.truncation = args.truncation
    if args.device:
        settings.device = args.device
    if args.smoothing:
        try:
            coarse, middle, fine = (float(v) for v in args.smoothing.split(","))
        except ValueError:
            raise RunError(f"--smoothing needs three numbers such as 3,2,0.3, not {args.smoothing!r}") from None
        settings.smoothing_coarse, settings.smoothing_middle, settings.smoothing_fine = coarse, middle, fine


def apply_camera_settings(ext, scene, args):
    """The camera options over the scene's camera settings, checked by the engine first."""
    properties = importlib.import_module(ext.__name__ + ".addon.properties")
    errors = importlib.import_module(ext.__name__ + ".traeumer_blender.errors")
    settings = scene.traeumer
    names = {"camera": "camera_mode", "camera_drift": "camera_drift", "camera_nudge": "camera_nudge",
             "camera_x": "camera_x", "camera_y": "camera_y", "camera_rotation": "camera_rotation"}
    chosen = {prop: getattr(args, arg) for arg, prop in names.items() if getattr(args, arg) is not None}
    if not chosen:
        return
    previous = {prop: getattr(settings, prop) for prop in chosen}
    for prop, value in chosen.items():
        setattr(settings, prop, value)
    try:
        properties.camera_settings(settings)
    except errors.TraeumerError as error:
        for prop, value in previous.items():
            setattr(settings, prop, value)
        raise RunError(f"camera: {error}") from None
    for prop, value in chosen.items():      # a property clamps silently: refuse instead
        if isinstance(value, float) and abs(getattr(settings, prop) - value) > 1e-6 * max(1.0, abs(value)):
            raise RunError(f"camera: --{prop.replace('_', '-').replace('camera-mode', 'camera')} {value:g} is out of range")


def apply_motion_settings(ext, scene, args):
    """The motion options over the scene's motion settings, checked by the engine before any is
    set (a property would clamp a bad value without a word)."""
    motion = importlib.import_module(ext.__name__ + ".traeumer_blender.motion")
    properties = importlib.import_module(ext.__name__ + ".addon.properties")
    errors = importlib.import_module(ext.__name__ + ".traeumer_blender.errors")
    settings = scene.traeumer
    if args.beat_markers:
        settings.beat_markers = True
    if args.no_motion:
        properties.set_motion_settings(settings, motion.MOTION_OFF, use_motion=False)
        return
    try:
        current = properties.motion_settings(settings) if settings.use_motion else motion.MotionSettings()
        changes = {}
        if args.pulse is not None:
            changes["pulse_amounts"] = motion.parse_amounts(args.pulse)
        if args.pulse_bands is not None:
            changes["pulse_bands"] = motion.parse_bands(args.pulse_bands)
        for name in ("attack", "release", "crossfade", "hold"):
            if getattr(args, name) is not None:
                changes[name] = getattr(args, name)
        if args.no_cuts:
            changes["cuts"] = False
        chosen = dataclasses.replace(current, **changes).checked()
    except errors.TraeumerError as error:
        raise RunError(f"motion: {error}") from None
    properties.set_motion_settings(settings, chosen, use_motion=True)


# --- running ------------------------------------------------------------------------------------------

def generate(ext, args):
    jobs = importlib.import_module(ext.__name__ + ".addon.jobs")
    try:
        job = jobs.GenerateJob.start(bpy.context)
    except jobs.JobError as error:
        raise RunError(str(error), code=2) from None
    for warning in job.warnings:
        print(f"traeumer_run: warning: {warning}", file=sys.stderr, flush=True)
    last = {}
    stages = {}   # stage -> [first event time, last event time]
    started = time.monotonic()

    def show(job, event):
        kind = event.get("event")
        now = time.monotonic()
        if kind == "progress":
            stage = event.get("stage")
            stages.setdefault(stage, [now, now])[1] = now
            final = event.get("total") and event.get("done") == event.get("total")
            if final or now - last.get(stage, 0.0) >= 1.0:
                last[stage] = now
                print(f"traeumer_run: [{now - started:6.1f} s] {job.status_text()}", flush=True)
        elif kind == "styles":
            print(f"traeumer_run: [{now - started:6.1f} s] styles ready, style curves keyed", flush=True)

    jobs.run_blocking(job, on_event=show, timeout=args.timeout)
    if job.state == "DONE":
        print(f"traeumer_run: {job.message}", flush=True)
        timing = ", ".join(f"{stage} {end - begin:.1f} s" for stage, (begin, end) in stages.items())
        print(f"traeumer_run: stage times: {timing}", flush=True)
        return job
    if job.state == "CANCELLED":
        raise RunError(job.message, code=3)
    raise RunError(job.message, code=1)


def render_video(ext, scene, job, path):
    """The Sequencer (frames and music) through Blender's own renderer, as H.264/AAC MP4."""
    compat = importlib.import_module(ext.__name__ + ".addon.compat")
    track = job.track
    size = int(track.resolution or 256)
    render = scene.render
    render.resolution_x = render.resolution_y = size
    render.resolution_percentage = 100
    render.use_sequencer = True
    scene.view_settings.view_transform = "Standard"
    scene.frame_start = track.frame_start
    scene.frame_end = track.frame_start + track.frame_count - 1
    compat.set_video_output(scene, os.path.abspath(path))
    started = time.monotonic()
    bpy.ops.render.render(animation=True)
    print(f"traeumer_run: rendered {os.path.abspath(path)} in {time.monotonic() - started:.1f} s", flush=True)


def set_aspect(settings, text: str) -> None:
    """--aspect into the panel's setting: a named one, or a custom W:H."""
    named = {"scene": "SCENE", "16:9": "16:9", "9:16": "9:16", "1:1": "1:1"}
    if text.lower() in named:
        settings.aspect = named[text.lower()]
        return
    try:
        width, height = (int(part) for part in text.split(":"))
    except ValueError:
        raise RunError(f"--aspect must be scene, 16:9, 9:16, 1:1 or W:H with whole numbers, not {text!r}") from None
    if width < 1 or height < 1:
        raise RunError(f"--aspect parts must be positive, not {text!r}")
    settings.aspect, settings.aspect_width, settings.aspect_height = "CUSTOM", width, height


def main(argv=None):
    args = parse_arguments(script_arguments(sys.argv if argv is None else argv))
    started = time.monotonic()
    if args.open_blend:
        if not os.path.isfile(args.open_blend):
            raise RunError(f".blend file not found: {args.open_blend}")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.open_blend))
    ext = load_extension()
    print(f"traeumer_run: extension {ext.__name__} from {os.path.dirname(os.path.abspath(ext.__file__))}",
          flush=True)
    scene = bpy.context.scene
    if args.audio:
        add_sound_strip(ext, scene, args)
    else:
        if args.fps:
            raise RunError("--fps applies to a new sound strip (--audio); the open file keeps its rate")
        choose_strip(ext, scene, args)
    apply_settings(scene, args)
    apply_motion_settings(ext, scene, args)
    apply_camera_settings(ext, scene, args)
    if args.blend:
        os.makedirs(os.path.dirname(os.path.abspath(args.blend)), exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.blend))
    job = generate(ext, args)
    if args.blend:
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.blend))
        print(f"traeumer_run: saved {os.path.abspath(args.blend)}", flush=True)
    if args.render:
        render_video(ext, scene, job, args.render)
    print(f"traeumer_run: finished in {time.monotonic() - started:.1f} s", flush=True)
    return 0


def _run():
    code = 1
    try:
        code = main()
    except RunError as error:
        print(f"traeumer_run: error: {error}", file=sys.stderr, flush=True)
        code = error.code
    except SystemExit as exit_request:  # argparse
        code = exit_request.code if isinstance(exit_request.code, int) else 2
    except Exception as error:  # a bug: say so, with the traceback
        import traceback
        traceback.print_exc()
        print(f"traeumer_run: internal error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        _stop_worker()
    sys.stdout.flush()
    sys.stderr.flush()
    # end the process here: Blender's own exit can hang on 4.5 with Python classes registered
    os._exit(code)


def _stop_worker():
    for name, module in list(sys.modules.items()):
        if name.endswith(".worker_client") and hasattr(module, "stop_worker"):
            try:
                module.stop_worker()
            except Exception:
                pass


if __name__ == "__main__":
    _run()
