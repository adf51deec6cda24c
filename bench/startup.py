"""Start-up cost: whole-process wall time of ``xmanager launch <script>`` for a 1-unit launch.

    python bench/startup.py [--runs 7] [--peer-python PATH]

The launch script (written to a temporary folder) creates an experiment and adds one
/bin/true job on the local executor. For reference the same interpreter also times
``python -c pass`` and ``python -c "from xmanager import xm, xm_local"``. Each command
gets one untimed warm-up run (bytecode caches, store creation), then --runs timed runs.
The children get PYTHONPYCACHEPREFIX=<temp folder> and no PYTHONDONTWRITEBYTECODE, so
the warm-up fills a throwaway bytecode cache (the usual state of an installed package)
without writing into the repository or site-packages.

With --peer-python, ``<peer bin dir>/xmanager launch <script>`` runs DeepMind XManager's
equivalent script, with HOME set to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import textwrap

from _common import scratch_dir, table, time_command

TARGET_S = 0.3

OURS_SCRIPT = textwrap.dedent(
    '''\
    """One /bin/true unit on the local executor."""
    from absl import app
    from xmanager import xm, xm_local


    def main(argv):
        del argv
        with xm_local.create_experiment(experiment_title="bench-startup") as experiment:
            [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path="/bin/true")])
            experiment.add(xm.Job(executable, xm_local.Local()))


    if __name__ == "__main__":
        app.run(main)
    '''
)

PEER_SCRIPT = textwrap.dedent(
    '''\
    """DeepMind XManager: one /bin/true unit on the local executor."""
    from absl import app
    from xmanager import xm, xm_local


    def main(argv):
        del argv
        with xm_local.create_experiment(experiment_title="bench-startup-peer") as experiment:
            [executable] = experiment.package([xm.binary(path="/bin/true", executor_spec=xm_local.Local.Spec())])
            experiment.add(xm.Job(executable, xm_local.Local(experimental_stream_output=False)))


    if __name__ == "__main__":
        app.run(main)
    '''
)





def console_script(python: str) -> str:
    """The ``xmanager`` script next to ``python`` (not resolving symlinks: venvs link python)."""
    path = os.path.join(os.path.dirname(os.path.abspath(shutil.which(python) or python)), "xmanager")
    if not os.path.exists(path):
        raise SystemExit(f"no xmanager console script at {path}")
    return path


def bytecode_env(work: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    return env


def count_experiments(url: str) -> int:
    import sqlite3

    path = url[len("sqlite:///"):]
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM experiments e JOIN work_units u USING (experiment_id) "
                          "WHERE u.status = 'completed'").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--peer-python", metavar="PATH", help="interpreter with DeepMind XManager installed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    options = parser.parse_args()
    runs = max(1, options.runs)

    with scratch_dir("xm-bench-startup-", options.keep) as work:
        script = os.path.join(work, "launch_one.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(OURS_SCRIPT)
        url = f"sqlite:///{os.path.join(work, 'data', 'xmanager.sqlite3')}"
        env = {**bytecode_env(work), "XM_DATA_DIR": os.path.join(work, "data"), "XM_DATABASE_URL": url}
        python = sys.executable
        commands = [
            ("python -c pass", [python, "-c", "pass"]),
            ("python -c 'from xmanager import xm, xm_local'", [python, "-c", "from xmanager import xm, xm_local"]),
            ("xmanager launch <1-unit script>", [console_script(python), "launch", script]),
        ]
        results = []
        for label, command in commands:
            results.append((label, time_command(command, runs, env, work)))
        launched = count_experiments(url)
        if launched != runs + 1:
            raise SystemExit(f"expected {runs + 1} completed 1-unit experiments in the store, found {launched}")

        print(f"start-up: wall time of whole processes, {runs} timed run(s) after 1 warm-up each")
        print(f"python {sys.version.split()[0]} at {python}; bytecode cache in a temporary PYTHONPYCACHEPREFIX")
        print()
        rows = []
        for label, times in results:
            median = statistics.median(times)
            target = ""
            if label.startswith("xmanager launch"):
                target = f"<= {TARGET_S} {'PASS' if median <= TARGET_S else 'FAIL'}"
            rows.append([label, f"{median:.3f}", f"{min(times):.3f}", target])
        print(table(["command", "median (s)", "min (s)", "target"], rows))
        base = statistics.median(results[0][1])
        imports = statistics.median(results[1][1])
        launch = statistics.median(results[2][1])
        print()
        print(f"import xm, xm_local over bare interpreter: {imports - base:.3f} s; "
              f"launch over the imports: {launch - imports:.3f} s")

        print()
        if not options.peer_python:
            print("peer (DeepMind XManager): skipped (pass --peer-python PATH to compare)")
            return 0
        peer_script = os.path.join(work, "peer_launch_one.py")
        with open(peer_script, "w", encoding="utf-8") as handle:
            handle.write(PEER_SCRIPT)
        home = os.path.join(work, "peer-home")
        os.makedirs(home)
        peer_env = {k: v for k, v in bytecode_env(work).items() if not k.startswith("XM_") and k != "PYTHONPATH"}
        peer_env["HOME"] = home
        peer_env.pop("XDG_DATA_HOME", None)
        try:
            peer_times = time_command([console_script(options.peer_python), "launch", peer_script], runs, peer_env, home)
        except RuntimeError as error:
            print(f"peer (DeepMind XManager) with {options.peer_python}: failed: {error}")
            return 1
        peer = statistics.median(peer_times)
        print(f"peer (DeepMind XManager) with {options.peer_python}")
        print(table(
            ["command", "median (s)", "min (s)"],
            [
                ["peer xmanager launch <1-unit script>", f"{peer:.3f}", f"{min(peer_times):.3f}"],
                ["ours xmanager launch <1-unit script>", f"{launch:.3f}", f"{min(results[2][1]):.3f}"],
                ["ratio peer/ours (median)", f"{peer / launch:.2f}", ""],
            ],
        ))
        return 0


if __name__ == "__main__":
    sys.exit(main())
