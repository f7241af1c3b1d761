# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker protocol (traeumer_blender/protocol.py) and the rules about what imports what.

Fast: no Blender and no models. The protocol must be importable on both sides, the engine
modules Blender's side uses must not need torch, and the field names of a request must be the
names the engine itself uses.
"""

import ast
import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap

import pytest

from blender_harness import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
from traeumer_blender import protocol  # noqa: E402
from traeumer_blender.errors import TraeumerError  # noqa: E402

GENERATE_PARAMS = dict(audio="/music/song.ogg", out_dir="/frames", fps="30000/1001", start=1.5,
                       duration=None, model="default", mapper="", resolution=None,
                       smoothing=[3.0, 2.0, 0.3], truncation=1.0, seed=7, device="auto")
# engine modules Blender's side may import: plain Python and numpy, never torch nor scipy (which
# Blender does not ship; ``smoothing`` imports it where it smooths, so ``motion`` loads without it)
TORCH_FREE_MODULES = ("errors", "protocol", "progress", "timing", "layer_groups", "output_folder",
                      "styles_file", "style_edit", "labels", "mapping", "npz_files", "png", "paths",
                      "motion", "smoothing", "camera", "aspect")


def example_params(cmd):
    """A valid params dict of every request (all fields given)."""
    return {
        protocol.PING: {}, protocol.CANCEL: {}, protocol.SHUTDOWN: {},
        protocol.GENERATE: GENERATE_PARAMS,
        protocol.UPDATE: dict(styles_path="/f/styles.npz", edits_path="/f/edits.npz", device="cpu",
                              section_starts=[0.0, 10.1]),
        protocol.LABEL_CANDIDATES: dict(model="default", device="cpu", seed=1, count=4, resolution=64,
                                        out_dir="/c", base_w=[0.5] * 8, strength=0.35),
        protocol.LABEL_ADD: dict(set_path="/s.labels.npz", name="taste", model="default", encoder="default",
                                 device="cpu", audio="/a.ogg", start=0.0, duration=10.0, w=[0.0] * 8,
                                 origin={"kind": "seed", "seed": 1}, thumbnail="", audio_files=["/b.ogg"]),
        protocol.LABEL_SUGGEST: dict(set_path="/s.labels.npz", encoder="default", device="cpu",
                                     audio_files=["/a.ogg"], clip_seconds=10.0),
        protocol.LABEL_TRAIN: dict(set_path="/s.labels.npz", model="default", device="cpu", out="/m.npz",
                                   steps=100, seed=0),
    }[cmd]


@pytest.mark.parametrize("cmd", sorted(protocol.REQUEST_FIELDS))
def test_every_request_survives_the_line_between_builder_and_validator(cmd):
    request = protocol.build_request(cmd, **example_params(cmd))
    line = json.dumps(dict(request, id=12))
    request_id, parsed_cmd, params = protocol.parse_request(line)
    assert (request_id, parsed_cmd) == (12, cmd)
    assert params == request["params"] == protocol.checked_params(cmd, example_params(cmd))


def test_bad_requests_are_refused_with_the_field_named():
    with pytest.raises(protocol.ProtocolError, match="generate: missing field audio"):
        protocol.build_request(protocol.GENERATE, **{k: v for k, v in GENERATE_PARAMS.items() if k != "audio"})
    with pytest.raises(protocol.ProtocolError, match="unknown field.*size"):
        protocol.build_request(protocol.GENERATE, size=64, **GENERATE_PARAMS)
    with pytest.raises(protocol.ProtocolError, match="generate.seed must be an integer"):
        protocol.build_request(protocol.GENERATE, **dict(GENERATE_PARAMS, seed=True))
    with pytest.raises(protocol.ProtocolError, match="generate.start must be a finite number"):
        protocol.build_request(protocol.GENERATE, **dict(GENERATE_PARAMS, start=float("nan")))
    with pytest.raises(protocol.ProtocolError, match="must have 3 numbers"):
        protocol.build_request(protocol.GENERATE, **dict(GENERATE_PARAMS, smoothing=[1.0, 2.0]))
    with pytest.raises(protocol.ProtocolError, match="unknown request 'frobnicate'"):
        protocol.build_request("frobnicate")
    for line, message in [("[1, 2]", "JSON object"), ("{not json", "not JSON"), ('{"id": 3}', "cmd"),
                          ("[" * 100000, "nested deeper"), ('{"a":' * 5000 + "1" + "}" * 5000, "nested deeper")]:
        with pytest.raises(protocol.ProtocolError, match=message):
            protocol.parse_request(line)
    # an error of a request with an id keeps the id (so Blender can tell whose error it is)
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.parse_request(json.dumps({"id": 9, "cmd": protocol.UPDATE, "params": {}}))
    assert caught.value.request_id == 9
    assert isinstance(caught.value, TraeumerError)
    # brackets inside strings are text, not nesting
    deep_text = json.dumps({"id": 1, "cmd": "ping", "params": {}, "note": "[" * 1000})
    assert protocol.parse_request(deep_text)[1] == "ping"


def test_events_are_strict_json():
    line = protocol.encode_event(protocol.event(protocol.DONE, id=1, result={"l1": float("nan"),
                                                                             "values": [1.0, float("inf")]}))
    assert "NaN" not in line and "Infinity" not in line
    assert json.loads(line) == {"id": 1, "result": {"l1": None, "values": [1.0, None]}, "event": "done"}


def test_request_fields_have_the_engines_own_names():
    """A field has one name in every layer: the generate fields are GenerateSettings' fields,
    update's are update_frames' arguments, and nothing says "size" for a resolution."""
    from traeumer_blender import label_worker, style_edit, worker
    from traeumer_blender.pipeline import GenerateSettings

    settings_fields = {f.name for f in dataclasses.fields(GenerateSettings)}
    assert set(protocol.REQUEST_FIELDS[protocol.GENERATE]) <= settings_fields
    update_arguments = set(inspect.signature(style_edit.update_frames).parameters)
    assert set(protocol.REQUEST_FIELDS[protocol.UPDATE]) <= update_arguments
    assert all("size" not in fields for fields in protocol.REQUEST_FIELDS.values())
    # one handler per job request, and every handler reads only fields of its request
    assert set(worker.JOB_HANDLERS) == set(protocol.JOB_REQUESTS)
    for cmd, handler in worker.JOB_HANDLERS.items():
        source = textwrap.dedent(inspect.getsource(handler))
        read = {node.slice.value for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                and node.value.id == "params" and isinstance(node.slice, ast.Constant)}
        assert read <= set(protocol.REQUEST_FIELDS[cmd]), (cmd, read - set(protocol.REQUEST_FIELDS[cmd]))
    assert label_worker.handle_train in worker.JOB_HANDLERS.values()


def test_worker_answers_every_line_and_keeps_serving():
    """Hostile lines (deep nesting, not JSON, bad fields) each get an error event; the worker
    stays up and answers the next ping."""
    code = "import sys; from traeumer_blender.worker import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-u", "-c", code, "--idle-timeout", "0"], cwd=str(REPO_ROOT),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = ["[" * 100000, '{"a":' * 50000 + "1" + "}" * 50000, "not json",
             json.dumps({"id": 5, "cmd": "generate", "params": {"audio": "x"}}),
             json.dumps({"id": 6, "cmd": "ping"}), json.dumps({"id": 7, "cmd": "shutdown"})]
    out, err = process.communicate("\n".join(lines) + "\n", timeout=120)
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [(e["event"], e.get("id")) for e in events]
    assert kinds[0] == ("ready", None)
    errors = [e for e in events if e["event"] == protocol.ERROR]
    assert len(errors) == 4 and all(e["kind"] == protocol.ERROR_USER for e in errors)
    assert errors[3]["id"] == 5 and "missing field" in errors[3]["message"]
    assert ("pong", 6) in kinds and kinds[-1] == ("bye", None)
    assert process.returncode == 0
    assert "Traceback" not in err


def test_modules_blender_imports_need_no_torch():
    """Blender's side never loads torch (nor scipy): the engine modules it imports (found in its
    source) import in a fresh interpreter where importing torch or scipy fails."""
    used = set()
    for folder in ("addon", "operators", "panels"):
        for path in (REPO_ROOT / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and "traeumer_blender" in node.module:
                    parts = node.module.split(".")
                    below = parts[parts.index("traeumer_blender") + 1:]
                    used.update(below[:1] or [alias.name for alias in node.names])
    assert used, "found no engine imports on Blender's side"
    assert used <= set(TORCH_FREE_MODULES), sorted(used - set(TORCH_FREE_MODULES))
    script = textwrap.dedent(f"""
        import importlib, sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "scipy"):
                    raise ImportError(name + " is not available here")
        sys.meta_path.insert(0, NoTorch())
        for name in {sorted(TORCH_FREE_MODULES)!r}:
            importlib.import_module("traeumer_blender." + name)
        assert "torch" not in sys.modules and "scipy" not in sys.modules
        print("ok")
    """)
    completed = subprocess.run([sys.executable, "-c", script], cwd=str(REPO_ROOT), capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0 and completed.stdout.strip() == "ok", completed.stderr


def test_a_worker_python_keeps_its_own_packages_before_the_bundled_wheels(tmp_path):
    """A Worker Python with its own (CUDA) torch keeps it: the extension's wheels come after the
    interpreter's own packages, and wheels of another Python version are not used at all."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    wheels = tmp_path / "lib" / version / "site-packages"
    (wheels / "numpy").mkdir(parents=True)
    (wheels / "numpy" / "__init__.py").write_text("raise ImportError('the bundled copy')\n")
    (wheels / "only_bundled.py").write_text("WHERE = 'bundled'\n")
    other = tmp_path / "lib" / "python3.99" / "site-packages"
    other.mkdir(parents=True)
    script = ("import sys; from traeumer_blender.worker import use_extension_wheels; "
              "used = use_extension_wheels(); import numpy, only_bundled; "
              "print(used == sys.path[-1], numpy.__file__, only_bundled.WHERE)")
    env = dict(__import__("os").environ, TRAEUMER_EXTENSION_WHEELS=str(wheels), PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    last, numpy_file, where = done.stdout.split()
    assert last == "True" and not numpy_file.startswith(str(wheels)) and where == "bundled"
    env["TRAEUMER_EXTENSION_WHEELS"] = str(other)
    done = subprocess.run([sys.executable, "-c", "from traeumer_blender.worker import use_extension_wheels; "
                           "print(repr(use_extension_wheels()))"], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == "''"
