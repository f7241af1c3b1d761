# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a track's frames go in Blender: folder, image strip, image sequence and material."""

import os
import re
import tempfile

import bpy

from ..traeumer_blender.output_folder import FRAME_PATTERN, frame_path
from . import compat

MAX_CHANNEL = 128


class OutputError(Exception):
    """A problem with the output folder, reported to the user as is."""


def safe_name(name: str) -> str:
    """A folder name made from a strip name (no separators or odd characters)."""
    cleaned = re.sub(r"[^\w\-. ]+", "_", name).strip(" .")
    return cleaned or "track"


def resolve_output_dir(settings, strip_name: str):
    """(absolute folder, path to store in the track, warning or "").

    Default ``//traeumer/<strip name>/``. A ``//`` path needs a saved .blend: an unsaved file
    falls back to a temporary folder, with a warning.
    """
    wanted = settings.output_dir or f"//traeumer/{safe_name(strip_name)}/"
    if wanted.startswith("//") and not bpy.data.filepath:
        folder = os.path.join(tempfile.gettempdir(), "traeumer", safe_name(strip_name))
        return folder, folder, (f"The .blend file is not saved: frames go to the temporary folder {folder}; "
                                f"save the file or set an output folder to keep them")
    folder = os.path.normpath(bpy.path.abspath(wanted))
    return folder, stored_path(folder), ""


def stored_path(path: str) -> str:
    """``//relative`` when the .blend is saved (survives moving the project), else absolute."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive (Windows)
            return path
    return path


# --- image strip ----------------------------------------------------------------------------------

def free_channel_above(scene, channel: int, frame_start: int, frame_end: int, ignore=()) -> int:
    """The lowest channel above ``channel`` with no strip in [frame_start, frame_end)."""
    busy = set()
    for strip in compat.all_strips(scene):
        if strip.name in ignore:
            continue
        first, end = compat.strip_visible_range(strip)
        if first < frame_end and end > frame_start:
            busy.add(strip.channel)
    for candidate in range(channel + 1, MAX_CHANNEL + 1):
        if candidate not in busy:
            return candidate
    raise OutputError("No free Sequencer channel above the sound strip for the frames")


def find_strip(scene, name: str):
    if not name:
        return None
    for strip in compat.all_strips(scene):
        if strip.name == name:
            return strip
    return None


def remove_strip(scene, name: str) -> None:
    strip = find_strip(scene, name)
    if strip is not None:
        compat.top_level_strips(scene.sequence_editor).remove(strip)


def make_image_strip(scene, track, sound_strip, folder: str, frame_count: int):
    """An image strip of frames 1..frame_count on a free channel above the sound strip,
    starting at the sound strip's first visible frame. Frames not written yet show as missing
    and appear as they are written."""
    old_channel = None
    old = find_strip(scene, track.image_strip)
    if old is not None:
        old_channel = old.channel
        remove_strip(scene, track.image_strip)
    start = compat.strip_visible_range(sound_strip)[0]
    end = start + frame_count
    channel = old_channel
    if channel is None or channel <= sound_strip.channel or _channel_busy(scene, channel, start, end):
        channel = free_channel_above(scene, sound_strip.channel, start, end)
    strip = compat.new_image_strip(scene, f"TräumerAI {track.name}", frame_path(folder, 0), channel, start)
    for index in range(1, frame_count):
        strip.elements.append(FRAME_PATTERN.format(index + 1))
    strip.directory = _dir_path(folder)
    track.image_strip = strip.name
    return strip


def _channel_busy(scene, channel, start, end) -> bool:
    for strip in compat.all_strips(scene):
        first, last = compat.strip_visible_range(strip)
        if strip.channel == channel and first < end and last > start:
            return True
    return False


def _dir_path(folder: str) -> str:
    path = stored_path(folder)
    return path if path.endswith(("/", "\\")) else path + "/"


# --- image sequence and material -------------------------------------------------------------------

def make_image(track, folder: str, frame_count: int, resolution: int):
    """An Image datablock reading the frames as an image sequence."""
    name = track.image_name or f"TräumerAI {track.name}"
    image = bpy.data.images.get(name)
    if image is None:
        size = max(int(resolution or 0), 4)
        image = bpy.data.images.new(name, size, size)
    image.source = "SEQUENCE"
    image.filepath = stored_path(frame_path(folder, 0))
    image.use_fake_user = True
    track.image_name = image.name
    return image


def make_material(track, image, frame_start: int, frame_count: int):
    """A material that shows the frame of the current scene frame (emission, so it shows as is)."""
    name = track.material_name or f"TräumerAI {track.name}"
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    tree = compat.material_node_tree(material)
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.name = texture.label = "TräumerAI Frames"
    texture.location = (-400, 0)
    emission = nodes.new("ShaderNodeEmission")
    emission.location = (-120, 0)
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (120, 0)
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    texture.image = image
    set_image_user(texture.image_user, frame_start, frame_count)
    # nothing uses the material until the editor assigns it: keep it in the saved file anyway
    material.use_fake_user = True
    track.material_name = material.name
    return material


def set_image_user(image_user, frame_start: int, frame_count: int) -> None:
    """Scene frame ``frame_start + i`` shows file number ``i + 1``."""
    image_user.frame_duration = max(int(frame_count), 1)
    image_user.frame_start = int(frame_start)
    image_user.frame_offset = 0
    image_user.use_auto_refresh = True
    image_user.use_cyclic = False


def material_texture_node(material):
    if material is None or material.node_tree is None:
        return None
    return material.node_tree.nodes.get("TräumerAI Frames")


def refresh_track(scene, track) -> None:
    """Show newly written or re-rendered frames."""
    strip = find_strip(scene, track.image_strip)
    if strip is not None:
        compat.invalidate_strip(strip)
    image = bpy.data.images.get(track.image_name)
    if image is not None and not bpy.app.background:
        image.reload()
