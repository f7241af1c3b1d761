# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Generate from audio" panel in the Sequencer sidebar, with its "Motion" and "Camera" sub-panels."""

import os

import bpy

from ..addon import compat, jobs, markers
from ..addon.timeline import sound_strip_span, target_sound_strip
from ..traeumer_blender.layer_groups import GROUP_NAMES
from ..traeumer_blender.timing import describe_fps


class TRAEUMER_PT_generate(bpy.types.Panel):
    bl_idname = "TRAEUMER_PT_generate"
    bl_label = "Generate from audio"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "TräumerAI"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.traeumer

        row = layout.row(align=True)
        if scene.sequence_editor is not None:
            row.prop_search(settings, "strip_name", scene.sequence_editor, compat.all_strips_attribute(),
                            text="Strip", icon="SOUND")
        else:
            row.prop(settings, "strip_name", text="Strip", icon="SOUND")
        row.operator("traeumer.use_active_strip", text="", icon="EYEDROPPER")

        strip = target_sound_strip(scene)
        box = layout.box()
        if strip is None:
            box.label(text="No sound strip: add one or make it active", icon="INFO")
        else:
            span = sound_strip_span(scene, strip)
            column = box.column(align=True)
            column.label(text=span.name, icon="SOUND")
            column.label(text=os.path.basename(span.filepath) or "(no file)", icon="FILE_SOUND")
            column.label(text=f"Frames {span.frame_start}–{span.frame_end - 1} ({span.frame_count})")
            column.label(text=f"{float(span.duration_seconds):.3f} s at {describe_fps(span.fps)}")

        column = layout.column()
        column.use_property_split = True
        column.use_property_decorate = False
        column.prop(settings, "model_path", text="Model")
        if not settings.model_path:
            column.label(text="Built-in generator", icon="BLANK1")
        column.prop(settings, "mapper_path", text="Mapping")
        column.prop(settings, "output_dir", text="Output")
        if not settings.output_dir:
            name = strip.name if strip is not None else "<strip name>"
            column.label(text=f"//traeumer/{name}/", icon="FILE_FOLDER")
        column.prop(settings, "resolution")
        column.prop(settings, "aspect")
        if settings.aspect == "CUSTOM":
            custom = column.row(align=True)
            custom.prop(settings, "aspect_width", text="W")
            custom.prop(settings, "aspect_height", text="H")
        drafts = column.row(heading="Drafts")
        drafts.prop(settings, "use_draft", text="")
        size = drafts.row()
        size.active = settings.use_draft
        size.prop(settings, "draft_size", text="")
        smoothing = column.column(align=True, heading="Smoothing")
        smoothing.prop(settings, "smoothing_coarse")
        smoothing.prop(settings, "smoothing_middle")
        smoothing.prop(settings, "smoothing_fine")
        column.prop(settings, "truncation")
        column.prop(settings, "seed")
        column.prop(settings, "device")

        job = jobs.active_job()
        if job is not None and not job.finished:
            row = layout.row(align=True)
            row.progress(factor=job.progress_factor, type="BAR", text=job.status_text())
            row.operator("traeumer.cancel", text="", icon="CANCEL")
        else:
            row = layout.row()
            row.scale_y = 1.4
            row.enabled = strip is not None
            row.operator("traeumer.generate", icon="PLAY")
            if job is not None and job.state == "FAILED" and not isinstance(job, jobs.LabelJob):
                layout.label(text=job.message[:120], icon="ERROR")

        if len(settings.tracks):
            layout.label(text="Tracks in this file")
            layout.template_list("TRAEUMER_UL_tracks", "", settings, "tracks", settings, "active_track_index", rows=2)
            track = jobs.active_track(scene)
            if track is not None:
                info = layout.column(align=True)
                size = f"{track.frame_width or track.resolution}x{track.resolution}" if track.resolution else ""
                info.label(text=f"{track.frame_count} frames from {track.frame_start}  {size}", icon="IMAGE_DATA")
                if track.action_name:
                    info.label(text=f"Curves: action '{track.action_name}'", icon="ACTION")
                sections = markers.section_count(track)
                if sections:
                    beats = len(track.markers) - sections
                    text = f"Markers: {sections} section{'s' if sections != 1 else ''}"
                    info.label(text=text + (f", {beats} beats" if beats else ""), icon="MARKER_HLT")
                info.label(text=track.output_dir, icon="FILE_FOLDER")
                if track.message:
                    info.label(text=track.message[:120])
                row = layout.row()
                row.enabled = job is None or job.finished
                row.operator("traeumer.update_frames", icon="FILE_REFRESH").track = track.name


class TRAEUMER_PT_motion(bpy.types.Panel):
    """Musical motion of Generate: pulse on onsets, cuts between sections, hold, markers."""

    bl_idname = "TRAEUMER_PT_motion"
    bl_label = "Motion"
    bl_parent_id = "TRAEUMER_PT_generate"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "TräumerAI"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.prop(context.scene.traeumer, "use_motion", text="")

    def draw(self, context):
        settings = context.scene.traeumer
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.active = settings.use_motion
        pulse = layout.column(align=True, heading="Pulse")
        for group in GROUP_NAMES:
            row = pulse.row(align=True)
            row.prop(settings, f"pulse_{group}")
            row.prop(settings, f"pulse_band_{group}", text="")
        column = layout.column(align=True)
        column.prop(settings, "pulse_attack")
        column.prop(settings, "pulse_release")
        column = layout.column(heading="Sections")
        column.prop(settings, "motion_cuts")
        row = column.row()
        row.active = settings.motion_cuts
        row.prop(settings, "motion_crossfade")
        layout.prop(settings, "motion_hold")
        layout.prop(settings, "beat_markers")


class TRAEUMER_PT_camera(bpy.types.Panel):
    """The camera of StyleGAN3 models: still or moved by the music, and a constant offset."""

    bl_idname = "TRAEUMER_PT_camera"
    bl_label = "Camera"
    bl_parent_id = "TRAEUMER_PT_generate"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "TräumerAI"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = context.scene.traeumer
        layout = self.layout
        note = jobs.camera_note(context.scene)
        if note:
            layout.label(text=note, icon="INFO")
        column = layout.column()
        column.use_property_split = True
        column.use_property_decorate = False
        column.active = not note
        column.prop(settings, "camera_mode")
        music = column.column(align=True)
        music.active = settings.camera_mode == "music"
        music.prop(settings, "camera_drift")
        music.prop(settings, "camera_nudge")
        offset = column.column(align=True, heading="Offset")
        offset.prop(settings, "camera_x")
        offset.prop(settings, "camera_y")
        offset.prop(settings, "camera_rotation")


class TRAEUMER_UL_tracks(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        icons = {"DONE": "CHECKMARK", "RUNNING": "TIME", "FAILED": "ERROR", "CANCELLED": "CANCEL"}
        layout.label(text=item.name, icon=icons.get(item.state, "SEQUENCE"))
        layout.label(text=f"{item.frame_count} fr")


classes = (TRAEUMER_UL_tracks, TRAEUMER_PT_generate, TRAEUMER_PT_motion, TRAEUMER_PT_camera)
