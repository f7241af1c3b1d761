# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings stored on the scene as ``scene.traeumer`` (saved with the .blend)."""

from fractions import Fraction

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..traeumer_blender import camera, motion
from ..traeumer_blender.aspect import format_aspect
from ..traeumer_blender.layer_groups import DEFAULT_SMOOTHING_SECONDS, GROUP_NAMES
from ..traeumer_blender.style_edit import COMPONENTS, amount_curve_name, pulse_curve_name
from . import compat


class TRAEUMER_PG_marker(bpy.types.PropertyGroup):
    """A timeline marker a track made (``addon/markers.py``): its name, and the frame it was last
    seen at."""

    frame: IntProperty(name="Frame", description="Scene frame of the marker when last seen")
    kind: EnumProperty(name="Kind", items=[("SECTION", "Section", "Where a section starts (a cut)"),
                                           ("BEAT", "Beat", "A beat")], default="SECTION")


class TRAEUMER_PG_track(bpy.types.PropertyGroup):
    """A track generated in this file: where its frames and styles are, and its style curves.

    ``name`` is the sound strip's name when it was generated. The style curves
    (``coarse_pc1`` ... ``fine_intensity``) are animated by F-curves on the scene's action.
    """

    sound_strip: StringProperty(name="Sound Strip", description="Sound strip the track was generated from")
    image_strip: StringProperty(name="Image Strip", description="Image strip that shows the frames")
    draft_strip: StringProperty(name="Draft Strip",
                                description="Image strip of the draft frames under the image strip while frames are made")
    image_name: StringProperty(name="Image", description="Image datablock (image sequence) of the frames")
    material_name: StringProperty(name="Material", description="Material that shows the frames")
    action_name: StringProperty(name="Action", description="Action holding the style curves")
    output_dir: StringProperty(name="Folder", description="Folder of the frames (relative to the .blend when saved)",
                               subtype="DIR_PATH", options=compat.path_options())
    styles_path: StringProperty(name="Styles", description="styles.npz of the track", subtype="FILE_PATH",
                                options=compat.path_options())
    frame_start: IntProperty(name="Start", description="Scene frame of the first generated frame")
    frame_count: IntProperty(name="Frames", description="Number of generated frames", min=0)
    resolution: IntProperty(name="Resolution", description="Frame height in pixels", min=0)
    frame_width: IntProperty(name="Width", description="Frame width in pixels (0: square)", min=0)
    draft_size: IntProperty(name="Draft Size", description="Draft frame height in pixels (0: no drafts)", min=0)
    draft_width: IntProperty(name="Draft Width", description="Draft frame width in pixels", min=0)
    state: EnumProperty(
        name="State",
        items=[("NEW", "New", ""), ("RUNNING", "Running", ""), ("DONE", "Done", ""),
               ("CANCELLED", "Cancelled", ""), ("FAILED", "Failed", "")],
        default="NEW",
    )
    message: StringProperty(name="Message", description="Last report of the track's job")
    markers: CollectionProperty(type=TRAEUMER_PG_marker, name="Markers",
                                description="Timeline markers of the track's sections and beats")
    model_path: StringProperty(name="Model", description="Model file the track was generated with (empty: built in)")
    has_camera: BoolProperty(name="Has Camera",
                             description="The track's model has a camera (StyleGAN3): it has camera curves")


def _add_curve_properties(cls):
    """The animatable style properties, named so the Graph Editor says what they are."""
    for group in GROUP_NAMES:
        for k in range(1, COMPONENTS + 1):
            cls.__annotations__[f"{group}_pc{k}"] = FloatProperty(
                name=f"{group.title()} PC {k}",
                description=(f"Principal component {k} of the {group} layers' style "
                             f"(in standard deviations of the generated track)"),
                default=0.0, soft_min=-5.0, soft_max=5.0, options={"ANIMATABLE"})
    cls.__annotations__["truncation"] = FloatProperty(
        name="Truncation", description="Pull styles toward the average style (1 = as generated with ψ=1)",
        default=1.0, soft_min=0.0, soft_max=2.0, options={"ANIMATABLE"})
    for group in GROUP_NAMES:
        cls.__annotations__[f"{group}_intensity"] = FloatProperty(
            name=f"{group.title()} Intensity",
            description=f"Scale of the {group} layers' style around the average style (1 = as generated)",
            default=1.0, soft_min=0.0, soft_max=2.0, options={"ANIMATABLE"})
    # musical motion: each band's shaped pulse and each group's pulse amount
    for band in motion.PULSE_BANDS:
        cls.__annotations__[pulse_curve_name(band)] = FloatProperty(
            name=f"Pulse {band.title()}",
            description=f"Shaped onset pulse of the {band} band (0 = calm, 1 = a full hit)",
            default=0.0, soft_min=0.0, soft_max=1.0, options={"ANIMATABLE"})
    for g, group in enumerate(GROUP_NAMES):
        cls.__annotations__[amount_curve_name(g)] = FloatProperty(
            name=f"{group.title()} Pulse",
            description=f"How far the pulse moves the {group} layers toward the pulse target",
            default=0.0, soft_min=0.0, soft_max=1.0, options={"ANIMATABLE"})


    # the camera of StyleGAN3 models (camera.py): x, y in frame heights, rotation in degrees
    descriptions = ("Where the camera looks, to the right, in frame heights (the picture slides left)",
                    "Where the camera looks, upward, in frame heights (the picture slides down)",
                    "Camera roll in degrees, counter-clockwise (the picture turns clockwise)")
    for name, label, text in zip(camera.CAMERA_CURVES, camera.CAMERA_LABELS, descriptions):
        soft = 360.0 if name == "camera_rotation" else 1.0     # degrees (a plain number, not radians)
        cls.__annotations__[name] = FloatProperty(name=label, description=text, default=0.0, soft_min=-soft,
                                                  soft_max=soft, options={"ANIMATABLE"})


_add_curve_properties(TRAEUMER_PG_track)

_BAND_ITEMS = [(band, band.title(), {"full": "All frequencies", "low": "Kicks and bass",
                                     "mid": "Snares and voices", "high": "Hi-hats and cymbals"}.get(band, band))
               for band in motion.PULSE_BANDS]
_HOLD_ITEMS = [(kind, kind.title(), {"none": "The look flows", "beat": "One look per beat",
                                     "bar": "One look per bar"}.get(kind, kind))
               for kind in motion.HOLD_KINDS]


def _motion_properties(cls):
    """Generate's motion settings; defaults are the engine's (``motion.MotionSettings``)."""
    notes = cls.__annotations__
    notes["use_motion"] = BoolProperty(
        name="Motion", description="Move the picture with the music: pulse on onsets, cuts between sections",
        default=True)
    for g, group in enumerate(GROUP_NAMES):
        notes[f"pulse_{group}"] = FloatProperty(
            name=group.title(), description=f"Pulse amount of the {group} layers (0 = calm)",
            default=motion.DEFAULT_PULSE_AMOUNTS[g], min=0.0, max=1.0, subtype="FACTOR")
        notes[f"pulse_band_{group}"] = EnumProperty(
            name=f"{group.title()} Band", description=f"Which band's onsets drive the {group} layers",
            items=_BAND_ITEMS, default=motion.DEFAULT_PULSE_GROUP_BANDS[g])
    notes["pulse_attack"] = FloatProperty(
        name="Attack", description="Rise time of the pulse (seconds)",
        default=motion.DEFAULT_ATTACK_SECONDS, min=0.0, soft_max=0.5, precision=3, unit="TIME_ABSOLUTE")
    notes["pulse_release"] = FloatProperty(
        name="Release", description="Decay time of the pulse after an onset (seconds)",
        default=motion.DEFAULT_RELEASE_SECONDS, min=0.0, soft_max=2.0, precision=3, unit="TIME_ABSOLUTE")
    notes["motion_cuts"] = BoolProperty(
        name="Cuts", description="Do not smooth across section boundaries: the look changes at a section start",
        default=motion.MotionSettings().cuts)
    notes["motion_crossfade"] = FloatProperty(
        name="Crossfade", description="How long a cut between sections blends (seconds)",
        default=motion.DEFAULT_CROSSFADE_SECONDS, min=0.0, soft_max=2.0, precision=3, unit="TIME_ABSOLUTE")
    notes["motion_hold"] = EnumProperty(
        name="Hold", description="Hold the look per beat or per bar", items=_HOLD_ITEMS,
        default=motion.MotionSettings().hold)
    notes["beat_markers"] = BoolProperty(
        name="Beat Markers", description="Also mark every beat on the timeline (bar.beat)", default=False)


def frame_aspect(scene, settings) -> str:
    """The aspect sent to the engine, "W:H" (``aspect.py``); SCENE: the render resolution's
    shape with its pixel aspect."""
    if settings.aspect == "CUSTOM":
        return f"{settings.aspect_width}:{settings.aspect_height}"
    if settings.aspect != "SCENE":
        return settings.aspect
    render = scene.render
    width = Fraction(render.resolution_x) * Fraction(render.pixel_aspect_x).limit_denominator(1000)
    height = Fraction(render.resolution_y) * Fraction(render.pixel_aspect_y).limit_denominator(1000)
    return format_aspect(width / height)


def _camera_properties(cls):
    """Generate's camera settings (StyleGAN3 models); defaults are the engine's (``camera.py``)."""
    notes = cls.__annotations__
    notes["camera_mode"] = EnumProperty(
        name="Camera", description="How the camera of a StyleGAN3 model moves",
        items=[("still", "Still", "The camera stays where X, Y and Rotation put it"),
               ("music", "Music", "A slow drift with the tempo and a nudge on each downbeat")],
        default=camera.CameraSettings().mode)
    notes["camera_drift"] = FloatProperty(
        name="Drift", description="Radius of the slow drift with the tempo (frame heights)",
        default=camera.DEFAULT_DRIFT, min=0.0, max=camera.MAX_OFFSET, soft_max=0.5, precision=3)
    notes["camera_nudge"] = FloatProperty(
        name="Nudge", description="How far each downbeat pushes the camera (frame heights)",
        default=camera.DEFAULT_NUDGE, min=0.0, max=camera.MAX_OFFSET, soft_max=0.2, precision=3)
    notes["camera_x"] = FloatProperty(
        name="X", description="Where the camera looks, to the right (frame heights; the picture slides left)",
        default=0.0, min=-camera.MAX_OFFSET, max=camera.MAX_OFFSET, soft_min=-1.0, soft_max=1.0, precision=3)
    notes["camera_y"] = FloatProperty(
        name="Y", description="Where the camera looks, upward (frame heights; the picture slides down)",
        default=0.0, min=-camera.MAX_OFFSET, max=camera.MAX_OFFSET, soft_min=-1.0, soft_max=1.0, precision=3)
    notes["camera_rotation"] = FloatProperty(
        name="Rotation", description="Camera roll in degrees, counter-clockwise (the picture turns clockwise)",
        default=0.0, min=-3600.0, max=3600.0, soft_min=-180.0, soft_max=180.0, precision=2)


def camera_settings(settings) -> "camera.CameraSettings":
    """The engine's CameraSettings for the scene's settings; raises TraeumerError naming a bad value."""
    return camera.CameraSettings(
        mode=settings.camera_mode, drift=_number(settings.camera_drift), nudge=_number(settings.camera_nudge),
        x=_number(settings.camera_x), y=_number(settings.camera_y),
        rotation=_number(settings.camera_rotation)).checked()


def _number(value) -> float:
    """A float property's value as the number it was set to (float32 0.01 -> 0.01)."""
    return float(f"{float(value):.6g}")


def motion_settings(settings) -> "motion.MotionSettings":
    """The engine's MotionSettings for the scene's settings (MOTION_OFF when motion is off);
    raises TraeumerError naming a bad value."""
    if not settings.use_motion:
        return motion.MOTION_OFF
    return motion.MotionSettings(
        pulse_amounts=tuple(_number(getattr(settings, f"pulse_{group}")) for group in GROUP_NAMES),
        pulse_bands=tuple(getattr(settings, f"pulse_band_{group}") for group in GROUP_NAMES),
        attack=_number(settings.pulse_attack), release=_number(settings.pulse_release),
        cuts=bool(settings.motion_cuts), crossfade=_number(settings.motion_crossfade),
        hold=settings.motion_hold).checked()


def set_motion_settings(settings, chosen, use_motion: bool = True) -> None:
    """Set the scene's settings from a MotionSettings (traeumer_run.py)."""
    settings.use_motion = bool(use_motion)
    if not use_motion:
        return
    for g, group in enumerate(GROUP_NAMES):
        setattr(settings, f"pulse_{group}", float(chosen.pulse_amounts[g]))
        setattr(settings, f"pulse_band_{group}", str(chosen.pulse_bands[g]))
    settings.pulse_attack, settings.pulse_release = float(chosen.attack), float(chosen.release)
    settings.motion_cuts, settings.motion_crossfade = bool(chosen.cuts), float(chosen.crossfade)
    settings.motion_hold = chosen.hold


class TRAEUMER_PG_settings(bpy.types.PropertyGroup):
    strip_name: StringProperty(
        name="Sound Strip",
        description="Sound strip to dream from; empty uses the active sound strip",
        default="",
    )
    model_path: StringProperty(
        name="Model",
        description="StyleGAN2 checkpoint (.pkl or .pt); empty uses the built-in generator",
        subtype="FILE_PATH", options=compat.path_options(),
        default="",
    )
    mapper_path: StringProperty(
        name="Mapping",
        description="Trained mapping file; empty uses the zero-label mapping",
        subtype="FILE_PATH", options=compat.path_options(),
        default="",
    )
    output_dir: StringProperty(
        name="Output",
        description="Folder for frames and styles; empty uses //traeumer/<strip name>/",
        subtype="DIR_PATH", options=compat.path_options(),
        default="",
    )
    resolution: IntProperty(
        name="Resolution",
        description="Frame size in pixels; 0 uses the model's own resolution",
        default=0, min=0, max=4096,
    )
    aspect: EnumProperty(
        name="Aspect",
        description="Shape of the frames; the height is the resolution, the width follows",
        items=[
            ("SCENE", "Scene", "The shape of the scene's render resolution"),
            ("16:9", "16:9", "Wide (landscape video)"),
            ("9:16", "9:16", "Tall (phones)"),
            ("1:1", "1:1", "Square, as StyleGAN draws"),
            ("CUSTOM", "Custom", "Width and height below"),
        ],
        default="SCENE",
    )
    aspect_width: IntProperty(name="Width", description="Custom aspect: width part", default=4, min=1, max=10000)
    aspect_height: IntProperty(name="Height", description="Custom aspect: height part", default=3, min=1, max=10000)
    use_draft: BoolProperty(
        name="Drafts First",
        description="Render a small draft of every frame first, so the whole song can be scrubbed at once; "
                    "the full frames replace them as they are made",
        default=True,
    )
    draft_size: EnumProperty(
        name="Draft Size",
        description="Height of the draft frames",
        items=[("64", "64 px", "Fastest"), ("128", "128 px", "Sharper drafts")],
        default="64",
    )
    smoothing_coarse: FloatProperty(
        name="Coarse", description="Smoothing window of the coarse layers (seconds)",
        default=DEFAULT_SMOOTHING_SECONDS[0], min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    smoothing_middle: FloatProperty(
        name="Middle", description="Smoothing window of the middle layers (seconds)",
        default=DEFAULT_SMOOTHING_SECONDS[1], min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    smoothing_fine: FloatProperty(
        name="Fine", description="Smoothing window of the fine layers (seconds)",
        default=DEFAULT_SMOOTHING_SECONDS[2], min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    truncation: FloatProperty(
        name="Truncation", description="Pull styles toward the average style (1 = none)",
        default=1.0, min=0.0, max=2.0,
    )
    seed: IntProperty(name="Seed", description="Seed of the zero-label mapping and noise", default=0, min=0)
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Auto", "GPU when there is one, else CPU"),
            ("cpu", "CPU", "Always the CPU"),
            ("cuda", "CUDA", "NVIDIA GPU"),
            ("mps", "Metal", "Apple GPU"),
        ],
        default="auto",
    )
    tracks: CollectionProperty(type=TRAEUMER_PG_track, name="Tracks",
                               description="Tracks generated in this file")
    active_track_index: IntProperty(name="Active Track", default=0, min=0)


_motion_properties(TRAEUMER_PG_settings)
_camera_properties(TRAEUMER_PG_settings)

classes = (TRAEUMER_PG_marker, TRAEUMER_PG_track, TRAEUMER_PG_settings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.traeumer = PointerProperty(type=TRAEUMER_PG_settings)


def unregister():
    del bpy.types.Scene.traeumer
    _unregister_classes()
