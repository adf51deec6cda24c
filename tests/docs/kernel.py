"""A Python process that runs a docs page's python blocks one after another in one namespace.

Started by ``test_code_blocks.py`` with the page's work folder as its working directory. Each
line on stdin is a JSON request ``{"path": FILE, "out": FILE}``: the code in ``path`` runs as the
``__main__`` module (so ``__file__`` and the launch script's folder are that file's), with file
descriptors 1 and 2 sent to ``out`` (child processes write there too). One JSON line answers each
request on the original stdout: ``{"ok": true}`` or ``{"ok": false, "error": TRACEBACK}``.
``SystemExit(0)`` (``absl.app.run`` returning) counts as success.
"""

import json
import os
import sys
import traceback
import types


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    for line in sys.stdin:
        request = json.loads(line)
        with open(request["path"]) as file:
            code = compile(file.read(), request["path"], "exec")
        with open(request["out"], "w") as out:
            saved = os.dup(1), os.dup(2)
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
            reply: dict = {"ok": True}
            try:
                module.__file__ = request["path"]
                sys.argv = [request["path"]]
                exec(code, module.__dict__)
            except SystemExit as stop:
                if stop.code not in (0, None):
                    reply = {"ok": False, "error": f"SystemExit({stop.code!r})"}
            except BaseException:
                reply = {"ok": False, "error": traceback.format_exc()}
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved[0], 1), os.dup2(saved[1], 2)
                os.close(saved[0]), os.close(saved[1])
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
