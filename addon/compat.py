# SPDX-License-Identifier: GPL-3.0-or-later
"""Every Blender API difference between 4.2 and 5.x lives here; all bpy callers use it.

- Sequencer: 4.2–4.3 have ``sequences``/``sequences_all``; 4.4–4.5 add ``strips``/``strips_all``
  (``sequences`` deprecated); 5.0 has only ``strips``/``strips_all``.
- Strip classes: ``SoundSequence``/``ImageSequence`` (≤ 4.3) vs ``SoundStrip``/``ImageStrip`` (4.4+);
  ``strip.type`` ('SOUND', 'IMAGE') is the same everywhere, so we test that.
- Animation: 4.4+ use slotted actions (F-curves live in a channelbag per slot); 5.0 removed
  ``Action.fcurves``; 4.2–4.3 only have ``Action.fcurves``.
- Strip timing: 5.2 (not 5.0; looked up by attribute) names the visible range ``left_handle``/
  ``right_handle``; ``frame_final_start``/``frame_final_end`` still work there but are deprecated
  (removal in 6.0).
- Path properties: 4.5+ warn when a path property gets a "//" (blend-relative) value unless it is
  declared with ``PATH_SUPPORTS_BLEND_RELATIVE``, an option 4.2–4.4 do not know.
- Timeline markers: ``scene.timeline_markers.new(name, frame=)`` / ``.remove(marker)`` are the same
  in 4.2–5.2, and a name keeps at most 63 bytes (longer ones are cut). 4.5 lets a marker hold ID
  properties, 5.0 and 5.2 refuse them: the extension records its markers by name (on the track)
  instead of tagging them.
"""

from fractions import Fraction

import bpy

BLENDER_VERSION = bpy.app.version
HAS_STRIPS_API = BLENDER_VERSION >= (4, 4, 0)
HAS_SLOTTED_ACTIONS = BLENDER_VERSION >= (4, 4, 0)
HAS_BLEND_RELATIVE_PATH_OPTION = BLENDER_VERSION >= (4, 5, 0)


# --- Properties ---------------------------------------------------------------------------------

def path_options(*options: str) -> set:
    """``options`` of a StringProperty that holds a file or folder path, which may be "//relative"
    (every such path is read through ``bpy.path.abspath``): the given options plus
    ``PATH_SUPPORTS_BLEND_RELATIVE`` where Blender has it. A new set each call (bpy wants a set)."""
    result = set(options)
    if HAS_BLEND_RELATIVE_PATH_OPTION:
        result.add("PATH_SUPPORTS_BLEND_RELATIVE")
    return result


# --- Sequencer --------------------------------------------------------------------------------

def top_level_strips(sequence_editor):
    """The top-level strip collection (has ``new_sound``, ``new_image`` ...)."""
    return sequence_editor.strips if HAS_STRIPS_API else sequence_editor.sequences


def all_strips_attribute() -> str:
    """Name of the collection of every strip, including those inside meta strips."""
    return "strips_all" if HAS_STRIPS_API else "sequences_all"


def all_strips(scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    return getattr(editor, all_strips_attribute())


def is_sound_strip(strip) -> bool:
    return strip is not None and strip.type == "SOUND"


def strip_visible_range(strip):
    """(first visible frame, last visible frame + 1) of a strip, after its trims."""
    if hasattr(strip, "left_handle"):   # 5.2
        return int(strip.left_handle), int(strip.right_handle)
    return int(strip.frame_final_start), int(strip.frame_final_end)


def active_strip(scene):
    editor = scene.sequence_editor
    return editor.active_strip if editor is not None else None


def new_sound_strip(scene, name: str, filepath: str, channel: int, frame_start: int):
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return top_level_strips(editor).new_sound(name, filepath, channel, frame_start)


def clear_element_sizes(strip) -> int:
    """Zero the remembered image sizes of a strip's elements; returns how many were cleared.

    ``elements.append`` leaves ``orig_width``/``orig_height`` uninitialised (the element array
    is reallocated, not zeroed), and rendering a frame whose file does not exist yet allocates
    a placeholder of that garbage size: Blender crashes ("Calloc returns null ... in
    imb_alloc_buffer"), e.g. when the playhead is on a frame still being made. The fields are
    read-only in Python, so they are zeroed in place (``StripElem``: char filename[256]; int
    orig_width, orig_height), only after checking that this layout matches what Python reads;
    Blender sets them again when it loads each image.
    """
    import ctypes

    cleared = 0
    for element in strip.elements:
        address = element.as_pointer()
        width = ctypes.c_int.from_address(address + _ELEMENT_NAME_BYTES)
        height = ctypes.c_int.from_address(address + _ELEMENT_NAME_BYTES + 4)
        if (width.value, height.value) != (element.orig_width, element.orig_height):
            return cleared       # another layout: leave it alone
        if width.value or height.value:
            width.value = height.value = 0
            cleared += 1
    return cleared


_ELEMENT_NAME_BYTES = 256   # StripElem.filename


def new_image_strip(scene, name: str, first_file: str, channel: int, frame_start: int):
    """An image strip shown at its images' own size; ``output.fit_strips`` scales it to the
    render frame (Blender's "Scale to Fit" works only from files that exist when a strip is made)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    return top_level_strips(editor).new_image(name, first_file, channel, frame_start, fit_method="ORIGINAL")


# --- Time ---------------------------------------------------------------------------------------

def scene_fps(scene) -> Fraction:
    """The scene's exact frame rate: fps / fps_base, e.g. 30 / 1.001 → 30000/1001.

    ``fps_base`` is stored as a float32, so it is snapped to the nearest ratio with a small
    denominator (1.001 → 1001/1000) instead of carrying float noise into frame times.
    """
    base = Fraction(scene.render.fps_base).limit_denominator(10000)
    return Fraction(scene.render.fps) / base


# --- Animation ----------------------------------------------------------------------------------

def ensure_action(id_data, action_name: str):
    """The ID's action, created (with a slot on 4.4+) when missing."""
    anim = id_data.animation_data or id_data.animation_data_create()
    if anim.action is None:
        anim.action = bpy.data.actions.new(action_name)
    if HAS_SLOTTED_ACTIONS and anim.action_slot is None:
        slot = anim.action.slots.new(id_type=id_data.id_type, name=id_data.name)
        anim.action_slot = slot
    return anim.action


def action_fcurves(id_data, create: bool = False):
    """The F-curve collection that animates ``id_data`` (``None`` when it has none)."""
    anim = id_data.animation_data
    if anim is None or anim.action is None:
        return None
    action = anim.action
    if not HAS_SLOTTED_ACTIONS:
        return action.fcurves
    slot = anim.action_slot
    if slot is None:
        return None
    if not action.layers:
        if not create:
            return None
        layer = action.layers.new("Layer")
        layer.strips.new(type="KEYFRAME")
    strip = action.layers[0].strips[0]
    channelbag = strip.channelbag(slot, ensure=create)
    return channelbag.fcurves if channelbag is not None else None


def ensure_fcurve(id_data, data_path: str, index: int = 0, group: str = "", action_name: str = ""):
    """An F-curve for ``data_path[index]`` on ``id_data``, created with its group if needed."""
    ensure_action(id_data, action_name or f"{id_data.name}Action")
    fcurves = action_fcurves(id_data, create=True)
    fcurve = fcurves.find(data_path, index=index)
    if fcurve is None:
        if HAS_SLOTTED_ACTIONS:
            fcurve = fcurves.new(data_path, index=index)
            if group:
                _assign_group_slotted(id_data, fcurve, group)
        else:
            fcurve = fcurves.new(data_path, index=index, action_group=group)
    return fcurve


def _assign_group_slotted(id_data, fcurve, group_name: str) -> None:
    anim = id_data.animation_data
    channelbag = anim.action.layers[0].strips[0].channelbag(anim.action_slot)
    group = channelbag.groups.get(group_name) or channelbag.groups.new(group_name)
    fcurve.group = group


def find_fcurve(id_data, data_path: str, index: int = 0):
    fcurves = action_fcurves(id_data)
    return fcurves.find(data_path, index=index) if fcurves is not None else None


def remove_fcurves(id_data, data_path_prefix: str) -> int:
    """Remove every F-curve of ``id_data`` whose data path starts with the prefix."""
    fcurves = action_fcurves(id_data)
    if fcurves is None:
        return 0
    doomed = [fcurve for fcurve in fcurves if fcurve.data_path.startswith(data_path_prefix)]
    for fcurve in doomed:
        fcurves.remove(fcurve)
    return len(doomed)


def set_keys_linear(fcurve, frames, values) -> None:
    """Replace the F-curve's keys in one bulk call (FACTS §4), linear interpolation."""
    points = fcurve.keyframe_points
    if len(points):
        points.clear()
    count = len(frames)
    points.add(count)
    coordinates = [0.0] * (2 * count)
    coordinates[0::2] = [float(f) for f in frames]
    coordinates[1::2] = [float(v) for v in values]
    points.foreach_set("co", coordinates)
    # enum value of 'LINEAR' in Keyframe.interpolation (CONSTANT, LINEAR, BEZIER, ...)
    points.foreach_set("interpolation", [1] * count)
    fcurve.update()


# --- Timeline markers ----------------------------------------------------------------------------

MARKER_NAME_BYTES = 63


def timeline_markers(scene):
    return scene.timeline_markers


def fit_marker_name(name: str) -> str:
    """``name`` cut (at a character) to what a marker keeps, so the stored name equals it."""
    encoded = name.encode("utf-8")
    if len(encoded) <= MARKER_NAME_BYTES:
        return name
    return encoded[:MARKER_NAME_BYTES].decode("utf-8", errors="ignore").rstrip()


def new_marker(scene, name: str, frame: int):
    return scene.timeline_markers.new(fit_marker_name(name), frame=int(frame))


def remove_marker(scene, marker) -> None:
    scene.timeline_markers.remove(marker)


# --- Sound, images, materials, rendering ------------------------------------------------------

def sound_offset_seconds(strip) -> float:
    """Extra offset of the sound inside its strip (``sound_offset``, 3.3+; 0 when absent)."""
    return float(getattr(strip, "sound_offset", 0.0) or 0.0)


def invalidate_strip(strip) -> None:
    """Make the Sequencer read the strip's files again (new or re-rendered frames)."""
    try:
        strip.invalidate_cache("RAW")
    except (AttributeError, TypeError, RuntimeError):
        pass


def material_node_tree(material):
    """The material's node tree; 5.x always has one (``use_nodes`` is deprecated there)."""
    if material.node_tree is None or (BLENDER_VERSION < (5, 0, 0) and not material.use_nodes):
        material.use_nodes = True
    return material.node_tree


def set_video_output(scene, filepath: str) -> None:
    """MP4 (H.264 + AAC) output; 5.0 needs ``media_type = 'VIDEO'`` before FFMPEG can be chosen."""
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    ffmpeg = scene.render.ffmpeg
    ffmpeg.format = "MPEG4"
    ffmpeg.codec = "H264"
    ffmpeg.audio_codec = "AAC"
    ffmpeg.audio_bitrate = 192
    scene.render.filepath = filepath


def new_color_strip(scene, name: str, channel: int, frame_start: int, length: int):
    """A colour strip; 5.0 takes ``length``, earlier versions ``frame_end``."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = top_level_strips(editor)
    if BLENDER_VERSION >= (5, 0, 0):
        return strips.new_effect(name, "COLOR", channel, frame_start, length=length)
    return strips.new_effect(name, "COLOR", channel, frame_start, frame_end=frame_start + length)
