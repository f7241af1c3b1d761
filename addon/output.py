# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a track's frames go in Blender: folder, image strip, image sequence and material."""

import os
import re
import shutil
import tempfile

import bpy

from ..traeumer_blender.output_folder import FRAME_PATTERN, draft_dir, frame_path
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


def make_image_strip(scene, track, sound_strip, folder: str, frame_count: int, drafts: bool = False):
    """The track's image strip: frames 1..frame_count on a free channel above the sound strip,
    starting at the sound strip's first visible frame; frames not written yet show as missing
    and appear as they are written. With ``drafts``, a strip of the draft frames (``draft/``)
    lies on the channel below it: where a full frame is missing its draft shows through, so
    every frame shows the best picture there is. ``fit_strips`` scales both to fill the frame."""
    old_channel = None
    old = find_strip(scene, track.image_strip)
    if old is not None:
        old_channel = old.channel
    remove_strip(scene, track.image_strip)
    remove_draft_strip(scene, track)
    start = compat.strip_visible_range(sound_strip)[0]
    end = start + frame_count
    lowest = sound_strip.channel + (1 if drafts else 0)
    channel = old_channel
    if (channel is None or channel <= lowest or _channel_busy(scene, channel, start, end)
            or (drafts and _channel_busy(scene, channel - 1, start, end))):
        channel = free_channel_above(scene, sound_strip.channel, start, end)
        while drafts and _channel_busy(scene, channel + 1, start, end):
            channel = free_channel_above(scene, channel, start, end)
        channel += 1 if drafts else 0
    if drafts:
        _add_draft_strip(scene, track, folder, channel - 1, start, frame_count)
    strip = _sequence_strip(scene, f"TräumerAI {track.name}", folder, channel, start, frame_count)
    track.image_strip = strip.name
    return strip


def make_draft_strip(scene, track, folder: str) -> bool:
    """The draft strip under the track's image strip again (Update Frames: edited frames show
    their fresh draft until their new full frame exists); False when there is none to make or
    no room for it (the old full frames then stay shown until they are replaced)."""
    strip = find_strip(scene, track.image_strip)
    if strip is None or track.draft_size <= 0:
        return False
    remove_draft_strip(scene, track)
    first, end = compat.strip_visible_range(strip)
    channel = strip.channel - 1
    if channel < 1 or _channel_busy(scene, channel, first, end):
        return False
    _add_draft_strip(scene, track, folder, channel, int(first), track.frame_count)
    fit_strips(scene, track)
    return True


def _add_draft_strip(scene, track, folder, channel, start, frame_count) -> None:
    draft = _sequence_strip(scene, f"TräumerAI {track.name} (draft)", draft_dir(folder), channel, start, frame_count)
    track.draft_strip = draft.name


def remove_draft_strip(scene, track) -> None:
    if track.draft_strip:
        remove_strip(scene, track.draft_strip)
        track.draft_strip = ""


def _sequence_strip(scene, name, folder, channel, start, frame_count):
    strip = compat.new_image_strip(scene, name, frame_path(folder, 0), channel, start)
    for index in range(1, frame_count):
        strip.elements.append(FRAME_PATTERN.format(index + 1))
    strip.directory = _dir_path(folder)
    compat.clear_element_sizes(strip)    # a frame not written yet must not crash Blender
    return strip


def fit_strips(scene, track) -> None:
    """Scale the track's strips so that their frames fill the render frame (as "Scale to Fit":
    Blender fits a strip only to files that exist when it is made)."""
    height = int(track.resolution)
    if height <= 0:
        return
    width = int(track.frame_width) or height
    sizes = [(track.image_strip, width, height)]
    if track.draft_size > 0:
        sizes.append((track.draft_strip, int(track.draft_width) or int(track.draft_size), int(track.draft_size)))
    render = scene.render
    for name, w, h in sizes:
        strip = find_strip(scene, name)
        if strip is not None:
            scale = min(render.resolution_x / w, render.resolution_y / h)
            strip.transform.scale_x = strip.transform.scale_y = scale


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

def make_image(track, folder: str, frame_count: int, resolution: int, drafts: bool = False):
    """An Image datablock reading the frames as an image sequence; while a job with drafts
    runs, from the track's view folder (``show_in_view``), else from the frames themselves."""
    name = track.image_name or f"TräumerAI {track.name}"
    image = bpy.data.images.get(name)
    if image is None:
        size = max(int(resolution or 0), 4)
        image = bpy.data.images.new(name, size, size)
    image.source = "SEQUENCE"
    image.use_fake_user = True
    track.image_name = image.name
    if drafts:
        start_view(track, folder, frame_count)
    else:
        image.filepath = stored_path(frame_path(folder, 0))
    return image


# An image sequence reads one folder, so while full frames are being made the texture reads a
# view folder holding, per frame, a hard link to the best file there is (the full frame, else its
# draft); it replaces each link as soon as a better file exists and goes when the job is done.
VIEW_DIR = ".view"


def view_dir(folder: str) -> str:
    return os.path.join(folder, VIEW_DIR)


def start_view(track, folder: str, frame_count: int) -> None:
    """The track's texture reads the view folder: every frame that exists already is linked."""
    os.makedirs(view_dir(folder), exist_ok=True)
    for index in range(frame_count):
        for source in (frame_path(folder, index), frame_path(draft_dir(folder), index)):
            if os.path.exists(source):
                _link_into_view(source, folder, index)
                break
    image = bpy.data.images.get(track.image_name)
    if image is not None:
        image.filepath = stored_path(frame_path(view_dir(folder), 0))


def show_in_view(folder: str, indices, draft: bool, over_full: bool = False) -> None:
    """Frames ``indices`` were just written (drafts or full frames): the view shows them, a
    draft only where its full frame does not exist (a kept one stays) unless ``over_full``
    (Update Frames: the full frame is stale)."""
    if not os.path.isdir(view_dir(folder)):
        return
    for index in indices:
        source = frame_path(draft_dir(folder) if draft else folder, index)
        if draft and not over_full and os.path.exists(frame_path(folder, index)):
            continue
        if os.path.exists(source):
            _link_into_view(source, folder, index)


def _link_into_view(source: str, folder: str, index: int) -> None:
    target = frame_path(view_dir(folder), index)
    temp = f"{target}.{os.getpid()}.link"
    try:
        try:
            os.link(source, temp)
        except OSError:           # a file system without hard links: a copy
            shutil.copyfile(source, temp)
        os.replace(temp, target)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass


def use_full_frames(track, folder: str) -> None:
    """The track's texture reads the full frames (all written); the view folder goes."""
    image = bpy.data.images.get(track.image_name)
    wanted = stored_path(frame_path(folder, 0))
    if image is not None and image.filepath != wanted:
        image.filepath = wanted
    shutil.rmtree(view_dir(folder), ignore_errors=True)


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
    for name in (track.image_strip, track.draft_strip):
        strip = find_strip(scene, name)
        if strip is not None:
            compat.invalidate_strip(strip)
    image = bpy.data.images.get(track.image_name)
    if image is not None and not bpy.app.background:
        image.reload()
