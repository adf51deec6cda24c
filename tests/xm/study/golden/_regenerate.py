"""Regenerate the golden JSON files with experiment-server 0.3.9 (NOT needed by the tests).

Run with a separate venv that has ``experiment-server==0.3.9`` installed:
    /tmp/es-venv/bin/python tests/xm/study/golden/_regenerate.py
Each ``<name>.toml`` here gives ``<name>.json``: ``{"<participant>": [blocks...]}`` for participants 1..6.
"""

import json
import pathlib
import warnings

from experiment_server._process_config import process_config_file

HERE = pathlib.Path(__file__).parent

for toml_path in sorted(HERE.glob("*.toml")):
    out = {}
    for p in range(1, 7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[str(p)] = process_config_file(toml_path, p, suppress_message=True)
    toml_path.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", toml_path.with_suffix(".json").name)
