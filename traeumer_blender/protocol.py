# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker protocol: what Blender's side and the background worker say to each other.

One JSON object per line. Blender writes requests to the worker's stdin; the worker answers
with events on its stdout. Every request carries an ``id``, and events about a request repeat
it. Standard library only: both sides import this module (Blender's without torch or numpy).

Requests: ``{"id": 2, "cmd": "generate", "params": {...}}``; the fields of each request's
``params`` are listed once, in ``REQUEST_FIELDS``. ``build_request`` (Blender's side) and
``check_request`` (the worker) both check them against that table, so a field has one name and
one type in every layer; the names are the engine's own (``GenerateSettings``, ``update_frames``,
``labels``).

    ping, cancel (the running job), shutdown       no params
    generate                                       music -> frames (pipeline.run_generate)
    update                                         re-render edited frames (style_edit)
    label_candidates, label_add, label_suggest, label_train      labelling (label_worker.py)

Events::

    ready     {"pid", "protocol", "version", "python"}       once, at start
    pong      {"id", "busy"}
    progress  {"id", "stage", "done", "total", "eta"         stages: load, decode, embed, style,
               [, "frames"]}                                 draft, render (done = frames written;
                                                             frames: the indices written in this
                                                             step, in DIR/draft/ or DIR), train
    styles    {"id", "path"}                                 styles.npz is written (generate)
    done      {"id", "result"}
    cancelled {"id"}
    error     {"id", "kind", "message"}                      kind: one of ERROR_KINDS
    bye       {"reason"}                                     shutdown, idle or stdin closed

``exit`` is never sent: Blender's side queues it itself when the worker process ends.
"""

import json
import math

from .errors import TraeumerError

# 3: generate.motion (musical motion) and update.section_starts (moved section cuts)
# 4: generate.draft/draft_size/aspect/first_frames (draft frames first, frames of any aspect)
#    and progress.frames (which frames a step wrote)
# 5: generate.camera (the StyleGAN3 camera); camera curve edits travel in update's edits file
# 6: update.draft (whether Blender can show fresh drafts of the edited frames)
PROTOCOL_VERSION = 6
# a worker with nothing to do exits after this long (Blender's Idle Timeout preference)
DEFAULT_IDLE_TIMEOUT_SECONDS = 600.0

# requests
PING = "ping"
CANCEL = "cancel"
SHUTDOWN = "shutdown"
GENERATE = "generate"
UPDATE = "update"
LABEL_CANDIDATES = "label_candidates"
LABEL_ADD = "label_add"
LABEL_SUGGEST = "label_suggest"
LABEL_TRAIN = "label_train"

# events
READY = "ready"
PONG = "pong"
PROGRESS = "progress"
STYLES = "styles"
DONE = "done"
CANCELLED = "cancelled"
ERROR = "error"
BYE = "bye"
EXIT = "exit"

# error kinds: the user's to fix; audio this Python cannot decode (Blender decodes it and
# asks again); a bug
ERROR_USER = "user"
ERROR_AUDIO_UNREADABLE = "audio_unreadable"
ERROR_INTERNAL = "internal"
ERROR_KINDS = (ERROR_USER, ERROR_AUDIO_UNREADABLE, ERROR_INTERNAL)

# a request line longer than this, or nested deeper, is refused before it is parsed
MAX_LINE_CHARS = 1 << 24
MAX_NESTING = 32

_REQUIRED = object()


class ProtocolError(TraeumerError):
    """A request that does not follow the protocol; the worker answers it with an error event of
    kind "user" and this message, and keeps serving."""

    def __init__(self, message: str, request_id=None):
        super().__init__(message)
        self.request_id = request_id


class Field:
    """One field of a request's params: its kind, and its default (required when absent)."""

    def __init__(self, kind: str, default=_REQUIRED, length: int = None):
        self.kind = kind           # str, int, float, bool, floats, strings, object
        self.default = default
        self.length = length       # for floats: the exact count

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def _text(default=_REQUIRED):
    return Field("str", default)


# "" for an optional file means "none" (zero-label mapping, no thumbnail)
REQUEST_FIELDS = {
    PING: {},
    CANCEL: {},
    SHUTDOWN: {},
    GENERATE: {
        "audio": _text(), "out_dir": _text(), "fps": _text(), "start": Field("float"),
        "duration": Field("float", None), "model": _text(), "mapper": _text(""),
        "encoder": _text("default"), "resolution": Field("int", None),
        "smoothing": Field("floats", length=3), "truncation": Field("float"), "seed": Field("int"),
        "device": _text(),
        # MotionSettings.record() (motion.py); null: the defaults (pulse and cuts on)
        "motion": Field("object", None),
        # draft frames first (DIR/draft/, draft_size px high), frames of this aspect ("16:9"),
        # and the frames to render first: [first, end) index pairs, flattened, in order
        "draft": Field("bool", False), "draft_size": Field("int", None), "aspect": _text("1:1"),
        "first_frames": Field("floats", None),
        # CameraSettings.record() (camera.py); null: the still camera
        "camera": Field("object", None),
    },
    # section_starts: the track's section starts (s in the audio file, from its markers); null:
    # the cuts stay as they are
    UPDATE: {"styles_path": _text(), "edits_path": _text(), "device": _text(),
             "section_starts": Field("floats", None), "draft": Field("bool", True)},
    LABEL_CANDIDATES: {
        "model": _text(), "device": _text(), "seed": Field("int"), "count": Field("int"),
        "resolution": Field("int"), "out_dir": _text(), "base_w": Field("floats", None),
        "strength": Field("float"),
    },
    LABEL_ADD: {
        "set_path": _text(), "name": _text(), "model": _text(), "encoder": _text(),
        "device": _text(), "audio": _text(), "start": Field("float"), "duration": Field("float"),
        "w": Field("floats"), "origin": Field("object"), "thumbnail": _text(""),
        "audio_files": Field("strings"),
    },
    LABEL_SUGGEST: {
        "set_path": _text(), "encoder": _text(), "device": _text(), "audio_files": Field("strings"),
        "clip_seconds": Field("float"),
    },
    LABEL_TRAIN: {
        "set_path": _text(), "model": _text(), "device": _text(), "out": _text(),
        "steps": Field("int"), "seed": Field("int"),
    },
}
JOB_REQUESTS = (GENERATE, UPDATE, LABEL_CANDIDATES, LABEL_ADD, LABEL_SUGGEST, LABEL_TRAIN)


def _checked_value(cmd: str, name: str, field: Field, value):
    where = f"{cmd}.{name}"
    if value is None and field.default is None:
        return None
    kind = field.kind
    if kind == "str":
        if not isinstance(value, str):
            raise ProtocolError(f"{where} must be a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where} must be an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError(f"{where} must be a finite number")
        return float(value)
    if kind == "floats":
        if not isinstance(value, (list, tuple)):
            raise ProtocolError(f"{where} must be a list of numbers")
        numbers = [_checked_value(cmd, name, Field("float"), v) for v in value]
        if field.length is not None and len(numbers) != field.length:
            raise ProtocolError(f"{where} must have {field.length} numbers, not {len(numbers)}")
        return numbers
    if kind == "strings":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ProtocolError(f"{where} must be a list of strings")
        return list(value)
    if kind == "object":
        if not isinstance(value, dict):
            raise ProtocolError(f"{where} must be an object")
        return value
    raise AssertionError(kind)


def checked_params(cmd: str, params) -> dict:
    """``params`` of request ``cmd`` with every field checked and defaults filled in."""
    fields = REQUEST_FIELDS.get(cmd)
    if fields is None:
        raise ProtocolError(f"unknown request {cmd!r}")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise ProtocolError(f"{cmd}: params must be an object")
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ProtocolError(f"{cmd}: unknown field(s) {', '.join(unknown)}")
    checked = {}
    for name, field in fields.items():
        if name not in params:
            if field.required:
                raise ProtocolError(f"{cmd}: missing field {name}")
            checked[name] = field.default
            continue
        checked[name] = _checked_value(cmd, name, field, params[name])
    return checked


def build_request(cmd: str, **params) -> dict:
    """A request (without its id, which the sender adds); raises ProtocolError for bad fields."""
    return {"cmd": cmd, "params": checked_params(cmd, params)}


def _nesting_depth(line: str) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    if line.count("[") + line.count("{") <= MAX_NESTING:
        return 0   # cannot be deeper: skip the scan
    depth = deepest = 0
    in_string = escaped = False
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_request(line: str):
    """``(id, cmd, params)`` of one request line; raises ProtocolError for anything else."""
    if len(line) > MAX_LINE_CHARS:
        raise ProtocolError(f"request line of {len(line)} characters (at most {MAX_LINE_CHARS})")
    if _nesting_depth(line) > MAX_NESTING:
        raise ProtocolError(f"request nested deeper than {MAX_NESTING} levels")
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"not JSON: {error}") from None
    if not isinstance(request, dict):
        raise ProtocolError("a request must be a JSON object")
    request_id = request.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, (int, str))):
        raise ProtocolError("a request id must be a number or a string")
    cmd = request.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError("a request needs a \"cmd\" string", request_id)
    try:
        return request_id, cmd, checked_params(cmd, request.get("params"))
    except ProtocolError as error:
        raise ProtocolError(str(error), request_id) from None


def event(name: str, **fields) -> dict:
    """An event object (the worker serialises it with ``encode_event``)."""
    fields["event"] = name
    return fields


def _strict(value):
    """``value`` with every non-finite float as null (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def encode_event(fields: dict, default=None) -> str:
    """One event as one line of strict JSON (``default`` turns other objects into JSON)."""
    try:
        return json.dumps(fields, default=default, allow_nan=False)
    except ValueError:   # a NaN or infinity somewhere: send null instead
        return json.dumps(_strict(json.loads(json.dumps(fields, default=default))), allow_nan=False)
