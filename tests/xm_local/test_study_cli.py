"""``xmanager study``: experiment-server 0.3.9's command line, output for output.

Each subcommand is checked for what 0.3.9 prints (stdout bytes, loguru-style lines on stderr), the files it
writes and its exit status; click's option syntax and error text; the help pages' layout (their descriptions
are worded by us); and side by side with 0.3.9's ``experiment-server`` (``$XM_PEER_EXPERIMENT_SERVER``, else
installed from PyPI into a cached venv; skipped with the reason only when it cannot be installed).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings

import pytest
from xmanager.xm.study.config import load_study
from xmanager.xm_local.cli import main
from xmanager.xm_local.study_cli import SAMPLE_CONFIG

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")
GOLDEN = pathlib.Path(__file__).parents[1] / "xm" / "study" / "golden"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| (?P<level>\w+) *\| (?P<where>[\w.]+:\w+:\d+) - (?P<message>.*)$")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["study", *argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _lines(err: str) -> list[tuple[str, str]]:
    """(level, message) of each log line on stderr (continuation lines are left out)."""
    return [(m["level"], m["message"]) for m in map(LINE.match, err.splitlines()) if m]


def _configs(path: pathlib.Path, participant: int) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return [block["config"] for block in load_study(path).blocks_for(participant)]


@pytest.fixture
def sample(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> pathlib.Path:
    path = tmp_path / "design.toml"
    code, out, err = _run(capsys, "new-config-file", str(path))
    assert (code, out) == (0, "")
    assert _lines(err) == [("INFO", f"New config at: {path}")]
    return path


# ---- new-config-file ----------------------------------------------------------------------------


def test_new_config_file_writes_a_valid_study(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file is ours (not 0.3.9's sample_config.toml): what matters is that it is a study both tools accept."""
    assert sample.read_text() == SAMPLE_CONFIG
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_study(sample).blocks_for(1)
    code, out, err = _run(capsys, "verify-config-file", str(sample))
    assert (code, out, _lines(err)[-1]) == (0, "", ("INFO", f"Config file verification successful for {sample}"))
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-r", "8")
    assert (code, err) == (0, "") and out == "".join(json.dumps(_configs(sample, p)) for p in range(1, 9))


def test_new_config_file_errors_are_logged_with_exit_status_0(
    sample: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample.write_text("# mine\n")
    code, out, err = _run(capsys, "new-config-file", str(sample))
    assert (code, out, _lines(err)) == (0, "", [("ERROR", f"{sample} already exists!")])
    assert sample.read_text() == "# mine\n"
    code, out, err = _run(capsys, "n", str(tmp_path))  # An existing folder: 0.3.9 refuses it too.
    assert (code, out, _lines(err)) == (0, "", [("ERROR", f"{tmp_path} exists and does not end with `.toml`")])


def test_new_config_file_folder_argument(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a" / "b"
    code, _, err = _run(capsys, "new", str(folder))
    assert code == 0 and _lines(err) == [("INFO", f"New config at: {folder / 'new_config.toml'}")]
    assert (folder / "new_config.toml").read_text() == SAMPLE_CONFIG


# ---- verify-config-file -------------------------------------------------------------------------


def test_verify_logs_the_grid_of_five_participants(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xmanager.xm.study import config, grid

    code, out, err = _run(capsys, "verify-config-file", str(sample))
    assert (code, out) == (0, "")
    table = grid.fancy_grid(config._get_table_for_participants(sample))
    first = err.splitlines()[0]
    assert LINE.match(first)["where"].startswith("xmanager.xm.study.config:verify_config:")
    assert err.endswith(f"Ordering for 5 participants: \n\n{table}\n\n" + err.splitlines()[-1] + "\n")
    assert _lines(err) == [
        ("INFO", "Ordering for 5 participants: "),
        ("INFO", f"Config file verification successful for {sample}"),
    ]
    assert table.splitlines()[1].split("│")[1:-1] == [f" {h:<{w}} " for h, w in zip(
        ["block", *(f"participant_{p}" for p in range(1, 6))], [7] + [15] * 5)]


def test_verify_failure_is_logged_with_its_traceback_and_exit_status_0(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[configuration]\norder = [["a"]]\n[[blocks]]\nname = "a"\nextends = "nope"\nconfig = {}\n')
    code, out, err = _run(capsys, "verify", str(bad))
    assert (code, out) == (0, "")
    assert _lines(err) == [("ERROR", "`nope` is not a valid name. It must be a `name`.")]
    assert "Traceback (most recent call last):" in err
    assert err.rstrip().endswith("InvalidStudyError: `nope` is not a valid name. It must be a `name`.")
    code, out, err = _run(capsys, "v", str(tmp_path / "missing.toml"))
    assert (code, out) == (0, "") and "No such file or directory" in _lines(err)[0][1]


def test_deprecated_keys_warn_as_python_shows_future_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, _ = _run(capsys, "verify", str(GOLDEN / "deprecated_keys.toml"))
    assert code == 0
    assert {str(w.message) for w in caught if w.category is FutureWarning} == {
        "`groups` is being deprecated, use `groups_strategy`",
        "`within_groups` is being deprecated, use `within_groups_strategy`",
    }


# ---- generate-config-json -----------------------------------------------------------------------


def test_generate_writes_the_documents_back_to_back(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-r", "3")
    assert (code, err) == (0, "")
    assert out == "".join(json.dumps(_configs(sample, p)) for p in (1, 2, 3))  # No newline, as 0.3.9.
    code, out, _ = _run(capsys, "g", str(sample), "--participant-index", "3")
    assert (code, out) == (0, json.dumps(_configs(sample, 3)))
    assert _run(capsys, "generate", str(sample), "-r", "0") == (0, "", "")


def test_generate_option_rules_of_0_3_9(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "generate-config-json", str(sample))
    assert (code, out) == (0, "")
    assert _lines(err) == [("ERROR", "Both `participant-index` and `participant-range` cannot be empty.")]
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-i", "1", "-r", "2")
    assert code == 0 and out == json.dumps(_configs(sample, 1)) + json.dumps(_configs(sample, 2))
    assert _lines(err) == [
        ("ERROR", "Both `participant-index` and `participant-range` provided. Ignoring `participant-index`.")
    ]


def test_generate_out_dir_files(sample: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "made" / "here"
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-r", "3", "-d", str(out_dir))
    assert (code, out) == (0, "")
    names = [f"design-participant_{p}.json" for p in (1, 2, 3)]
    assert sorted(os.listdir(out_dir)) == names
    assert _lines(err) == [("INFO", f"Creating direcotry {out_dir}"), ("INFO", "Generated files: ")]
    assert err.splitlines()[2:] == [str(out_dir / name) for name in names]
    for p, name in enumerate(names, start=1):
        assert (out_dir / name).read_text() == json.dumps(_configs(sample, p), indent=2)


def test_generate_matches_experiment_server_goldens(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    for case in ("groups_latin4", "choices", "init_final", "per_participant"):
        golden = json.loads((GOLDEN / f"{case}.json").read_text())
        code, _, _ = _run(capsys, "g", str(GOLDEN / f"{case}.toml"), "-r", "6", "-d", str(tmp_path))
        assert code == 0
        for p, blocks in golden.items():
            text = (tmp_path / f"{case}-participant_{p}.json").read_text()
            assert text == json.dumps([block["config"] for block in blocks], indent=2), (case, p)


def test_generate_errors_0_3_9_catches_are_logged_with_exit_status_0(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tight = tmp_path / "tight.toml"
    tight.write_text(
        "[configuration]\norder = { 1 = ['a'], 2 = ['a', 'b'] }\n"
        "[[blocks]]\nname = 'a'\nconfig = { x = { function_name = 'choices', args = [[1]], params = { unique = true } } }\n"
        "[[blocks]]\nname = 'b'\nextends = 'a'\nconfig = {}\n"
    )
    code, out, err = _run(capsys, "g", str(tight), "-r", "2", "-d", str(tmp_path / "out"))
    assert (code, out) == (0, "")
    level, message = _lines(err)[-1]
    assert level == "ERROR" and re.fullmatch(
        r"An error has been caught in function 'generate_config_json', process 'MainProcess' \(\d+\), "
        r"thread '\w+' \(\d+\):", message
    )
    assert err.rstrip().endswith("There are more calls to `choices` than number of elements in `args`")
    assert os.listdir(tmp_path / "out") == ["tight-participant_1.json"]  # Written before participant 2 failed.
    code, _, err = _run(capsys, "g", str(tight), "-i", "0")
    assert code == 0 and err.rstrip().endswith("Participant index needs to be greater than 0, got 0")


def test_generate_crashes_of_0_3_9_are_one_line_with_exit_status_1(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[configuration]\norder = [["a", "ghost"]]\n[[blocks]]\nname = "a"\nconfig = {}\n')
    assert _run(capsys, "g", str(unknown), "-r", "1") == (1, "", f"xmanager: error: {unknown}: KeyError: 'ghost'\n")
    missing = tmp_path / "missing.toml"
    assert _run(capsys, "g", str(missing), "-r", "1") == (
        1, "", f"xmanager: error: FileNotFoundError: [Errno 2] No such file or directory: '{missing}'\n"
    )


# ---- click's parsing, help and errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "err"),
    [
        (["bogus"], 2, "Usage: xmanager study [OPTIONS] COMMAND [ARGS]...\nTry 'xmanager study --help' for help.\n\n"
                       "Error: No such command 'bogus'.\n"),
        (["--he"], 2, "Usage: xmanager study [OPTIONS] COMMAND [ARGS]...\nTry 'xmanager study --help' for help.\n\n"
                      "Error: No such option '--he'. Did you mean '--help'?\n"),
        (["verify-config-file"], 2, "Usage: xmanager study verify-config-file [OPTIONS] CONFIG_FILE\n"
                                    "Try 'xmanager study verify-config-file --help' for help.\n\n"
                                    "Error: Missing argument 'CONFIG_FILE'.\n"),
        (["v", "a", "b", "c"], 2, "Usage: xmanager study v [OPTIONS] CONFIG_FILE\n"
                                  "Try 'xmanager study v --help' for help.\n\n"
                                  "Error: Got unexpected extra arguments (b c)\n"),
        (["g", "s.toml", "-i"], 2, "Error: Option '-i' requires an argument.\n"),
        (["g", "s.toml", "--participant"], 2, "Usage: xmanager study g [OPTIONS] CONFIG_FILE\n"
                                              "Try 'xmanager study g --help' for help.\n\nError: No such option "
                                              "'--participant'. (Did you mean one of: '--participant-index', "
                                              "'--participant-range'?)\n"),
        (["g", "s.toml", "-i", "1.5"], 2, "Usage: xmanager study g [OPTIONS] CONFIG_FILE\n"
                                          "Try 'xmanager study g --help' for help.\n\nError: Invalid value for "
                                          "'-i' / '--participant-index': '1.5' is not a valid integer.\n"),
        (["run", "s.toml", "-i", "0"], 2, "Usage: xmanager study run [OPTIONS] CONFIG_FILE\n"
                                          "Try 'xmanager study run --help' for help.\n\nError: Invalid value for "
                                          "'-i' / '--default-participant-index': 0 is not in the range x>=1.\n"),
        (["run", "s.toml", "-ax"], 2, "Usage: xmanager study run [OPTIONS] CONFIG_FILE\n"
                                      "Try 'xmanager study run --help' for help.\n\nError: No such option '-x'.\n"),
        (["ui"], 2, "Usage: xmanager study [OPTIONS] COMMAND [ARGS]...\nTry 'xmanager study --help' for help.\n\n"
                    "Error: No such command 'ui'.\n"),
    ],
)
def test_usage_errors_are_click_s(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, err: str) -> None:
    assert _run(capsys, *argv) == (code, "", err)


def test_out_dir_that_is_a_file_is_click_s_error(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "g", str(sample), "-i", "1", "-d", str(sample))
    assert (code, out) == (2, "")
    assert err.endswith(f"Error: Invalid value for '-d' / '--out-dir': Directory '{sample}' is a file.\n")


def test_option_syntax_is_click_s(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = json.dumps(_configs(sample, 1))
    two = json.dumps(_configs(sample, 2))
    assert _run(capsys, "g", "-i2", str(sample))[1] == two  # Attached value, options before the argument.
    assert _run(capsys, "g", str(sample), "--participant-index=2")[1] == two
    assert _run(capsys, "g", str(sample), "-i", "1", "-i", "2")[1] == two  # The last one wins.
    assert _run(capsys, "g", "--", str(sample), "-i", "1")[0] == 2  # After `--`, `-i` is an extra argument.
    assert _run(capsys, "g", str(sample), "-i", " 1")[1] == one  # int() of the text, as click.


def _help_structure(page: str) -> tuple[str, list[tuple[str, int]], str]:
    """What a click help page shares with 0.3.9's: its usage line, the commands it lists (with the column
    their descriptions start at) and its ``Options:`` section, verbatim. The descriptions are ours: each
    is checked to be one or more paragraphs indented by two and wrapped as click wraps them (78 columns)."""
    lines = page.splitlines()
    assert lines[0].startswith("Usage: ") and lines[1] == ""
    blocks = "\n".join(lines[2:]).split("\n\n")
    sections = {block.split("\n", 1)[0]: block for block in blocks if block.endswith(":") or ":\n" in block[:12]}
    for block in blocks:
        if block.split("\n", 1)[0] in sections:
            continue
        assert block.strip() and all(line.startswith("  ") and len(line) <= 78 for line in block.splitlines())
    commands: list[tuple[str, int]] = []
    rows = sections.get("Commands:", "").splitlines()[1:]
    for index, row in enumerate(rows):
        if row[2:3] == " ":
            continue  # The rest of a description.
        name, gap, _ = row[2:].partition("  ")
        if gap:
            column = 2 + len(name) + len(row[2 + len(name):]) - len(row[2 + len(name):].lstrip())
        else:
            column = len(rows[index + 1]) - len(rows[index + 1].lstrip())
        commands.append((name, column))
    return lines[0], commands, sections.get("Options:", "")


def test_help_pages_have_experiment_server_s_layout(capsys: pytest.CaptureFixture[str]) -> None:
    """0.3.9's usage lines, commands, options, metavars, order and columns; descriptions worded by us."""
    code, out, err = _run(capsys, "--help")
    assert (code, err) == (0, "")
    assert _help_structure(out) == (
        "Usage: xmanager study [OPTIONS] COMMAND [ARGS]...",
        [("generate-config-json (g,generate)", 34), ("new-config-file (n,new)", 34), ("run (r)", 34),
         ("verify-config-file (v,verify)", 34)],
        "Options:\n  --help  Show this message and exit.",
    )
    assert _run(capsys)[0] == 2 and _run(capsys)[2] == out  # No arguments: the help, on stderr, status 2.
    options = {
        ("g", "CONFIG_FILE"): "  -i, --participant-index INTEGER\n"
                              "  -r, --participant-range INTEGER\n"
                              "  -d, --out-dir DIRECTORY\n"
                              "  --help                          Show this message and exit.",
        ("run", "CONFIG_FILE"): "  -i, --default-participant-index INTEGER RANGE\n"
                                "                                  [x>=1]\n"
                                "  -h, --host TEXT\n"
                                "  -p, --port TEXT\n"
                                "  -a, --ask-default-participant-index\n"
                                "  --help                          Show this message and exit.",
        ("new-config-file", "NEW_FILE_LOCATION"): "  --help  Show this message and exit.",
        ("verify", "CONFIG_FILE"): "  --help  Show this message and exit.",
    }
    for (name, argument), section in options.items():
        code, out, err = _run(capsys, name, "--help")
        assert (code, err) == (0, "")
        assert _help_structure(out) == (f"Usage: xmanager study {name} [OPTIONS] {argument}", [], f"Options:\n{section}")
        assert out.endswith("\n") and "\n\n\n" not in out
    code, out, _ = _run(capsys, "run", "--help")
    assert "--token" not in out and "--insecure" not in out and "--persist" not in out  # Ours, hidden.


def test_help_descriptions_state_our_behaviour(capsys: pytest.CaptureFixture[str]) -> None:
    """The facts the descriptions give, as the other tests here and in studyserver/ check them."""
    def text(*argv: str) -> str:  # A help page's words, its lines joined.
        return " ".join(_run(capsys, *argv, "--help")[1].split())

    assert "for participants 1 to 5 and logs a table" in text("verify-config-file")
    generate = text("generate-config-json")
    assert "(-r N; with both, -r wins)" in generate and "DIRECTORY/<name>-participant_<N>.json" in generate
    assert "printed to stdout back to back, with nothing between them" in generate
    new = text("new-config-file")
    assert "written in it as `new_config.toml`" in new and "An existing file is never overwritten" in new
    assert "on HOST:PORT, 127.0.0.1:5000 unless" in text("run") and "picked up by the next API request" in text("r")
    group = text()
    assert "new-config-file (n,new) Write a commented sample study file." in group
    assert "run (r) Serve the study in CONFIG_FILE over HTTP." in group


# ---- run ----------------------------------------------------------------------------------------


def test_run_bad_config_is_one_line_with_exit_status_1(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("")
    assert _run(capsys, "run", str(bad)) == (
        1, "", "xmanager: error: ExperimentServerException: Invalid file type. Expected `.toml`\n"
    )


def test_run_serves_the_study_logs_as_0_3_9_and_writes_nothing(tmp_path: pathlib.Path) -> None:
    import http.client
    import socket
    import time

    config = tmp_path / "study.toml"
    config.write_text(SAMPLE_CONFIG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([XMANAGER, "study", "run", str(config), "-p", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/api/blocks-count")
                response = connection.getresponse()
                break
            except OSError:
                time.sleep(0.1)
        assert response.status == 200 and int(response.read()) > 0
        connection.request("POST", "/api/move-to-next", body=b"")
        assert connection.getresponse().read() == b'{"name": "training"}'
        connection.request("POST", "/api/shutdown", body=b"")
        assert connection.getresponse().status == 200
        out, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0 and out == f"Listening on http://127.0.0.1:{port}/\n"  # 0.3.9 prints nothing.
    lines = _lines(err)
    assert lines[0] == ("INFO", "Configuration loaded: ")
    assert [(level, re.sub(r"[\d.]+ms$", "ms", message)) for level, message in lines[1:]] == [
        ("INFO", "200 GET /api/blocks-count (127.0.0.1) ms"),
        ("INFO", "Loading block: training"),
        ("INFO", "200 POST /api/move-to-next (127.0.0.1) ms"),
        ("INFO", "200 POST /api/shutdown (127.0.0.1) ms"),
    ]
    assert os.listdir(tmp_path) == ["study.toml"]  # Participants live in memory (--persist keeps them).


def test_run_on_port_0_prints_the_port_it_listens_on(tmp_path: pathlib.Path) -> None:
    """The system picks the port; the URL printed (before any request) has it, and it is served there."""
    import http.client
    import selectors

    config = tmp_path / "study.toml"
    config.write_text(SAMPLE_CONFIG)
    server = subprocess.Popen([XMANAGER, "study", "run", str(config), "-p", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(server.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=30), "nothing printed in 30 s"
        line = server.stdout.readline()
        match = re.fullmatch(r"Listening on http://127\.0\.0\.1:(\d+)/\n", line)
        assert match, line
        port = int(match.group(1))
        assert port != 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/blocks-count")
        assert int(connection.getresponse().read()) > 0
        connection.request("POST", "/api/shutdown", body=b"")
        assert connection.getresponse().status == 200
        out, _ = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0 and out == ""


def test_run_off_loopback_needs_a_token_or_insecure(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unlike 0.3.9, which serves any address without a token: on the network, anyone could move participants."""
    from xmanager.xm_local.studyserver import http

    calls: list[dict] = []
    monkeypatch.setattr(http, "_server", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("XM_STUDY_TOKEN", raising=False)
    for argv in (["-h", "0.0.0.0"], ["--host", "192.0.2.1"], ["--host=::"], ["-h", ""], ["-h", "0.0.0.0", "--token", ""]):
        host = argv[-1].split("=")[-1] if len(argv) == 1 else argv[1]
        assert _run(capsys, "run", "study.toml", *argv) == (
            2,
            "",
            f"xmanager: error: refusing to serve on {host!r} without an access token, as anyone who can reach it "
            "could move participants: pass --token TOKEN (clients send `Authorization: Bearer TOKEN` on POST and "
            "PUT), or --insecure to serve without one, as experiment-server does\n",
        )
    assert calls == []
    # With a token (or $XM_STUDY_TOKEN), or --insecure, it serves; loopback needs neither (0.3.9's call, as is).
    assert _run(capsys, "run", "study.toml", "-h", "0.0.0.0", "--token", "t")[0] == 0
    assert calls[-1]["host"] == "0.0.0.0" and calls[-1]["token"] == "t" and "insecure" not in calls[-1]
    assert _run(capsys, "run", "study.toml", "-h", "0.0.0.0", "--insecure")[0] == 0
    assert calls[-1]["insecure"] is True and "token" not in calls[-1]
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert _run(capsys, "run", "study.toml", "-h", host) == (0, "", "")
        assert calls[-1] == {"default_participant_index": 1, "host": host, "port": "5000", "config_file": "study.toml"}
    monkeypatch.setenv("XM_STUDY_TOKEN", "from-env")
    assert _run(capsys, "run", "study.toml", "-h", "0.0.0.0")[0] == 0 and calls[-1]["token"] == "from-env"
    # The real command: one line on stderr, exit status 2, nothing bound or written.
    monkeypatch.delenv("XM_STUDY_TOKEN")
    config = tmp_path / "study.toml"
    config.write_text(SAMPLE_CONFIG)
    done = subprocess.run([XMANAGER, "study", "run", str(config), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("xmanager: error: refusing to serve on '0.0.0.0' without an access token")
    assert done.stderr.count("\n") == 1 and os.listdir(tmp_path) == ["study.toml"]


def test_experiment_server_cli_group(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """study_cli.cli is experiment-server's command group: click's CliRunner drives it, its calls go by module."""
    from click.testing import CliRunner
    from xmanager.xm_local import study_cli
    from xmanager.xm_local.studyserver import http

    calls: list[dict] = []
    monkeypatch.setattr(http, "_server", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("XM_STUDY_TOKEN", raising=False)
    runner = CliRunner()
    result = runner.invoke(study_cli.cli, ["run", "study.toml", "-p", "5001", "-i", "3"])
    assert result.exit_code == 0, result.output
    assert calls == [{"default_participant_index": 3, "host": "127.0.0.1", "port": "5001", "config_file": "study.toml"}]
    result = runner.invoke(study_cli.cli, ["r", "study.toml", "-a"], input="0\nx\n7\n")
    assert result.exit_code == 0 and calls[-1]["default_participant_index"] == 7
    assert result.stdout == (
        "Default participant index [1]: Error: 0 is not in the range x>=1.\n"
        "Default participant index [1]: Error: 'x' is not a valid integer range.\n"
        "Default participant index [1]: "
    )
    result = runner.invoke(study_cli.cli, ["r", "study.toml", "-i", "4", "-a"], input="\n")
    assert calls[-1]["default_participant_index"] == 4 and result.stdout == "Default participant index [4]: "
    assert _lines(result.stderr) == [
        ("WARNING", "The value passed for `default_participant_index` (-i) is being overwritten with "
                    "`ask_default_participant_index` (-a).")
    ]
    result = runner.invoke(study_cli.cli, ["r", "study.toml", "-a"], input="")
    assert result.exit_code == 1 and result.stderr == "Aborted!\n"
    assert runner.invoke(study_cli.cli, ["run", "study.toml", "--token", "t", "--persist"]).exit_code == 0
    assert calls[-1]["token"] == "t" and calls[-1]["persist"] is True

    sample = tmp_path / "s.toml"
    assert study_cli.cli.main(["new", str(sample)], standalone_mode=False) == 0
    result = runner.invoke(study_cli.cli, ["verify-config-file", str(sample)])
    assert result.exit_code == 0 and f"Config file verification successful for {sample}" in result.stderr
    result = runner.invoke(study_cli.cli, ["g", str(sample), "-i", "2"])
    assert result.exit_code == 0 and json.loads(result.stdout) == _configs(sample, 2)
    result = runner.invoke(study_cli.cli, ["v"])
    assert result.exit_code == 2 and result.stderr.startswith("Usage: experiment-server v [OPTIONS] CONFIG_FILE\n")


# ---- side by side with experiment-server 0.3.9 ----------------------------------------------------

@pytest.fixture(scope="module")
def peer() -> str:
    """0.3.9's ``experiment-server``: ``$XM_PEER_EXPERIMENT_SERVER``, else installed from PyPI into a cached venv."""
    from peer_venv import PeerVenvError, peer_executable

    given = os.environ.get("XM_PEER_EXPERIMENT_SERVER")
    if given:
        return given
    try:
        return peer_executable("experiment-server", "0.3.9", "experiment-server")
    except PeerVenvError as error:
        pytest.skip(str(error))


def _normalized(text: str, prog: str) -> str:
    text = re.sub(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \| (\w+ *)\| [\w.]+:\w+:\d+ - ", r"T | \2| L - ", text, flags=re.M)
    text = re.sub(r"process 'MainProcess' \(\d+\), thread '\w+' \(\d+\)", "P", text)
    text = text.split("Traceback (most recent call last):")[0]  # loguru's tracebacks show values: not compared.
    return text.replace(prog, "PROG")


@pytest.mark.parametrize(
    "argv",
    [
        ["verify-config-file", "s.toml"], ["generate-config-json", "s.toml", "-r", "4"],
        ["g", "s.toml", "-i", "2", "-r", "3", "-d", "out"], ["generate", "s.toml"], ["g", "s.toml", "-i", "0"],
        ["g", "bad.toml", "-r", "2"], ["v", "bad.toml"], ["new-config-file", "s.toml"], ["new", "."],
        ["g", "s.toml", "--out"], ["run", "s.toml", "-i", "0"], ["bogus"], ["v"],
        ["g", "s.toml", "-d", "s.toml", "-i", "1"],
    ],
)
def test_side_by_side_with_experiment_server(tmp_path: pathlib.Path, argv: list[str], peer: str) -> None:
    def setup(folder: pathlib.Path) -> None:
        shutil.copy(GOLDEN / "choices.toml", folder / "s.toml")
        (folder / "bad.toml").write_text('[configuration]\norder = [["a"]]\n[[blocks]]\nname = "a"\nextends = "x"\n')

    theirs, ours = _side_by_side(peer, tmp_path, argv, setup)
    assert theirs == ours


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["v", "--help"], ["g", "--help"], ["generate-config-json", "--help"], ["run", "--help"],
     ["r", "--help"], ["new-config-file", "--help"], ["verify-config-file", "--help"]],
)
def test_side_by_side_help_layout(tmp_path: pathlib.Path, argv: list[str], peer: str) -> None:
    """Help pages as 0.3.9's in all but the descriptions, which we word ourselves: the same exit status, usage
    line, commands and aliases (but ``ui``, which we do not offer), options, metavars, order and columns."""
    theirs, ours = _side_by_side(peer, tmp_path, argv, lambda folder: None)
    assert (theirs[0], theirs[2], theirs[3]) == (ours[0], ours[2], ours[3]) == (0, "", {})
    usage, commands, options = _help_structure(theirs[1])
    commands = [(name, column) for name, column in commands if name != "ui (ui)"]
    assert _help_structure(ours[1]) == (usage, commands, options)


def _side_by_side(peer: str, tmp_path: pathlib.Path, argv: list[str], setup, peer_env: dict[str, str] | None = None) -> list:
    """Run 0.3.9 and ours in fresh folders made by ``setup``: exit status, stdout, log lines, files (normalized)."""
    results = []
    for name, command in (("peer", [peer]), ("ours", [XMANAGER, "study"])):
        folder = tmp_path / name
        folder.mkdir()
        setup(folder)
        env = {**os.environ, **(peer_env or {})} if name == "peer" else None
        done = subprocess.run([*command, *argv], cwd=folder, capture_output=True, text=True, timeout=60, env=env)
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        prog = "experiment-server" if name == "peer" else "xmanager study"
        results.append((done.returncode, done.stdout.replace(prog, "PROG"), _normalized(done.stderr, prog), files))
    return results


def _peer_with_our_sample(peer: str, tmp_path: pathlib.Path) -> dict[str, str]:
    """An environment in which 0.3.9's new-config-file finds a sample file to copy: ours.

    Its wheel lacks the ``sample_config.toml`` it copies (so on its own the command fails on a new path); given
    ours, the two commands can be compared on what matters (exit status, messages, which files and folders are
    made or refused), not on the text of the sample.
    """
    python = pathlib.Path(peer).read_text(errors="replace").splitlines()[0].removeprefix("#!").strip()
    package = subprocess.run(
        [python, "-c", "import experiment_server, os; print(os.path.dirname(experiment_server.__file__))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    site = tmp_path / "peer-site"
    site.mkdir()
    (site / "experiment_server").symlink_to(package)  # It reads <package>/../sample_config.toml.
    (site / "sample_config.toml").write_text(SAMPLE_CONFIG)
    return {"PYTHONPATH": str(site)}


@pytest.mark.parametrize(
    ("argv", "written"),
    [
        (["new-config-file", "new.toml"], "new.toml"), (["n", "a/b"], "a/b/new_config.toml"),
        (["new", "folder/s.toml"], "folder/s.toml"), (["n", "s"], "s/new_config.toml"),
        (["new", "folder"], None), (["new", "s.toml"], None), (["new", "."], None), (["new-config-file"], None),
    ],
)
def test_side_by_side_new_config_file(tmp_path: pathlib.Path, argv: list[str], written: str | None, peer: str) -> None:
    """new-config-file as 0.3.9's: status, messages, files; the file written is the same (ours) for both."""
    def setup(folder: pathlib.Path) -> None:
        (folder / "s.toml").write_text("# mine\n")
        (folder / "folder").mkdir()

    theirs, ours = _side_by_side(peer, tmp_path, argv, setup, _peer_with_our_sample(peer, tmp_path))
    assert theirs == ours
    assert sorted(ours[3]) == sorted(["s.toml", *([written] if written else [])])
    if written:
        assert ours[0] == 0 and ours[3][written] == SAMPLE_CONFIG.encode() and "New config at: " in ours[2]


@pytest.mark.parametrize(
    "argv",
    [["verify-config-file", "s.toml"], ["generate-config-json", "s.toml", "-r", "8"], ["g", "s.toml", "-r", "3", "-d", "out"]],
)
def test_side_by_side_our_sample_is_a_study_for_both(tmp_path: pathlib.Path, argv: list[str], peer: str) -> None:
    """The file our new-config-file writes: 0.3.9 verifies and expands it as we do."""
    written = tmp_path / "written"
    written.mkdir()
    done = subprocess.run([XMANAGER, "study", "new-config-file", "s.toml"], cwd=written, capture_output=True, text=True)
    assert done.returncode == 0 and (written / "s.toml").read_text() == SAMPLE_CONFIG

    theirs, ours = _side_by_side(peer, tmp_path, argv, lambda folder: shutil.copy(written / "s.toml", folder / "s.toml"))
    assert theirs == ours and theirs[0] == 0
    if argv[0] == "verify-config-file":
        assert "Config file verification successful for s.toml" in theirs[2]
