# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Label" panel: teach the mapping your taste (pairs of clips and images, then training)."""

import os

import bpy

from ..addon import jobs, label_properties, labelling


def _job_row(layout):
    """Progress of a running labelling job; True when one runs."""
    job = jobs.active_job()
    if not isinstance(job, jobs.LabelJob):
        return False
    if not job.finished:
        row = layout.row(align=True)
        row.progress(factor=job.progress_factor, type="BAR", text=f"{job.title}: {job.status_text()}")
        row.operator("traeumer.cancel", text="", icon="CANCEL")
        return True
    if job is not None and job.state == "FAILED":
        layout.label(text=job.message[:120], icon="ERROR")
    return False


class TRAEUMER_PT_label(bpy.types.Panel):
    bl_idname = "TRAEUMER_PT_label"
    bl_label = "Label (teach your taste)"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "TräumerAI"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.traeumer_label
        _job_row(layout)
        running = jobs.active_job()
        busy = running is not None and not running.finished     # one job at a time, of any kind

        # the set
        box = layout.box()
        row = box.row(align=True)
        row.prop(settings, "set_name", text="", icon="BOOKMARKS")
        row.operator("traeumer.label_reload", text="", icon="FILE_REFRESH")
        row.operator("traeumer.label_import", text="", icon="IMPORT")
        row.operator("traeumer.label_export", text="", icon="EXPORT")
        box.prop(settings, "location", text="Keep")
        try:
            path = label_properties.set_path(scene)
            box.label(text=f"{len(settings.pairs)} pairs · {os.path.basename(path)}", icon="FILE")
        except label_properties.LabelLocationError as error:
            box.label(text=str(error), icon="ERROR")

        # the clip
        box = layout.box()
        box.label(text="1. Choose a clip", icon="SOUND")
        row = box.row(align=True)
        row.enabled = not busy
        row.operator("traeumer.label_clip_playhead", text="At Playhead", icon="PLAY_SOUND")
        row.operator("traeumer.label_suggest", text="Suggest Next", icon="LIGHT")
        box.prop(settings, "clip_duration")
        files = box.column(align=True)
        files.template_list("TRAEUMER_UL_label_audio", "", settings, "audio_files", settings, "active_audio", rows=2)
        row = files.row(align=True)
        row.operator("traeumer.label_add_audio", text="Add Music", icon="ADD")
        row.operator("traeumer.label_remove_audio", text="", icon="REMOVE")
        row.operator("traeumer.label_clip_file", text="Clip from File", icon="FILE_SOUND")
        if settings.clip_audio:
            where = settings.clip_strip or os.path.basename(settings.clip_audio)
            row = box.row(align=True)
            row.label(text=f"{where}: {settings.clip_start:.1f}–{settings.clip_start + settings.clip_duration:.1f} s")
            row.operator("traeumer.label_play", text="", icon="PLAY")
            row.operator("traeumer.label_stop", text="", icon="PAUSE")

        # candidates
        box = layout.box()
        box.label(text="2. Pick the image that fits", icon="IMAGE_DATA")
        row = box.row(align=True)
        row.prop(settings, "candidate_count", text="")
        row.prop(settings, "preview_resolution", text="")
        row.prop(settings, "variation", text="Var.")
        row = box.row()
        row.enabled = not busy
        row.operator("traeumer.label_candidates", text="New Batch", icon="FILE_REFRESH").mode = "RANDOM"
        if len(settings.candidates):
            grid = box.grid_flow(columns=3, even_columns=True, even_rows=True, align=True)
            for index, candidate in enumerate(settings.candidates):
                cell = grid.column(align=True)
                icon = labelling.preview_icon(candidate.image)
                if icon:
                    cell.template_icon(icon_value=icon, scale=4.0)
                else:
                    cell.label(text=candidate.name, icon="IMAGE")
                buttons = cell.row(align=True)
                buttons.enabled = not busy and bool(settings.clip_audio)
                buttons.operator("traeumer.label_pick", text="Pick").index = index
                similar = buttons.operator("traeumer.label_candidates", text="", icon="DUPLICATE")
                similar.mode, similar.index = "SIMILAR", index
            if not settings.clip_audio:
                box.label(text="Choose a clip to pick for", icon="INFO")

        # pairs
        box = layout.box()
        box.label(text="Labelled pairs", icon="LINKED")
        box.template_list("TRAEUMER_UL_label_pairs", "", settings, "pairs", settings, "active_pair", rows=3)
        row = box.row(align=True)
        row.operator("traeumer.label_use_pair", text="Go to Clip", icon="SOUND")
        row.operator("traeumer.label_delete", text="Delete", icon="TRASH")

        # training
        box = layout.box()
        box.label(text="3. Train the mapping", icon="SHADERFX")
        row = box.row(align=True)
        row.enabled = not busy and len(settings.pairs) > 0
        row.prop(settings, "train_steps")
        row.operator("traeumer.label_train", text="Train", icon="PLAY")
        if settings.report:
            box.label(text=settings.report)
        if settings.mapper_file:
            in_use = bpy.path.abspath(scene.traeumer.mapper_path) == bpy.path.abspath(settings.mapper_file)
            row = box.row(align=True)
            row.label(text="Generate uses it" if in_use else "Generate uses another mapping",
                      icon="CHECKMARK" if in_use else "INFO")
            row.operator("traeumer.label_use_mapping", text="Use", depress=in_use).trained = True
            row.operator("traeumer.label_use_mapping", text="Zero-label", depress=not scene.traeumer.mapper_path).trained = False


class TRAEUMER_UL_label_pairs(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        icon_id = labelling.preview_icon(item.thumbnail)
        text = f"{item.audio_name}  {item.start:.0f}–{item.start + item.duration:.0f} s"
        if icon_id:
            layout.label(text=text, icon_value=icon_id)
        else:
            layout.label(text=text, icon="IMAGE")


class TRAEUMER_UL_label_audio(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        layout.label(text=item.name or os.path.basename(item.filepath), icon="FILE_SOUND")


classes = (TRAEUMER_UL_label_pairs, TRAEUMER_UL_label_audio, TRAEUMER_PT_label)
