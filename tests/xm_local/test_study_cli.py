"""``xmanager study``: new-config-file, verify-config-file, generate-config-json."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import warnings

import pytest
from xmanager.xm.study.config import load_study
from xmanager.xm_local.cli import main
from xmanager.xm_local.study_cli import SAMPLE_CONFIG

XMANAGER = os.path.join(os.path.dirname(sys.executable), "xmanager")
GOLDEN = pathlib.Path(__file__).parents[1] / "xm" / "study" / "golden"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["study", *argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _configs(path: pathlib.Path, participant: int) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        study = load_study(path)
    return [block["config"] for block in study.blocks_for(participant)]


@pytest.fixture
def sample(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> pathlib.Path:
    path = tmp_path / "design.toml"
    code, out, err = _run(capsys, "new-config-file", str(path))
    assert (code, err) == (0, "")
    assert out == f"wrote {path}\n"
    return path


def test_new_config_file_writes_the_sample(sample: pathlib.Path) -> None:
    text = sample.read_text()
    assert text == SAMPLE_CONFIG
    assert text.lstrip().startswith("#")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # The sample uses no deprecated keys.
        study = load_study(sample)
    study.blocks_for(1)


def test_new_config_file_refuses_to_overwrite(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample.write_text("# mine\n")
    code, out, err = _run(capsys, "new-config-file", str(sample))
    assert code == 2
    assert out == ""
    assert err == f"xmanager: error: {sample} already exists; not overwriting it\n"
    assert sample.read_text() == "# mine\n"


def test_new_config_file_folder_argument(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a" / "b"
    code, _, _ = _run(capsys, "new", str(folder))
    assert code == 0
    assert (folder / "new_config.toml").read_text() == SAMPLE_CONFIG
    code, _, err = _run(capsys, "n", str(folder))
    assert code == 2 and "already exists" in err


def test_verify_prints_orders_of_five_participants(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "verify-config-file", str(sample))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["block", *(f"participant_{p}" for p in range(1, 6))]
    study = load_study(sample)
    orders = [study.order_for(p) for p in range(1, 6)]
    rows = [line.split() for line in lines[2:-1]]
    assert rows == [[f"block_{i + 1}", *(order[i] for order in orders)] for i in range(len(orders[0]))]
    assert lines[-1] == f"{sample}: valid (participants 1..5 expanded)"


def test_generate_stdout_one_json_line_per_participant(
    sample: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-r", "4")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 4 and out.endswith("\n")
    assert [json.loads(line) for line in lines] == [_configs(sample, p) for p in range(1, 5)]

    code, out, _ = _run(capsys, "g", str(sample), "--participant-index", "3")
    assert code == 0
    assert out == json.dumps(_configs(sample, 3)) + "\n"


def test_generate_range_and_index_options(sample: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "generate", str(sample), "--participant-range", "2")
    assert code == 0
    assert [json.loads(line)[0]["participant_index"] for line in out.splitlines()] == [1, 2]
    for argv in ([], ["-i", "0"], ["-r", "x"]):
        code, out, err = _run(capsys, "generate-config-json", str(sample), *argv)
        assert code == 2 and out == "", argv
        assert "error:" in err, argv
    # Both: -r wins, as in experiment-server, with a warning.
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-i", "1", "-r", "2")
    assert code == 0 and len(out.splitlines()) == 2
    assert err == "xmanager: warning: both -i and -r given; -i is ignored\n"


def test_generate_out_dir_files(
    sample: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "made" / "here"
    code, out, err = _run(capsys, "generate-config-json", str(sample), "-r", "3", "-d", str(out_dir))
    assert (code, err) == (0, "")
    names = [f"design-participant_{p}.json" for p in (1, 2, 3)]
    assert sorted(os.listdir(out_dir)) == names
    assert out.splitlines() == [str(out_dir / name) for name in names]
    for p, name in enumerate(names, start=1):
        text = (out_dir / name).read_text()
        # As experiment-server writes it: the list of configs (not the block wrappers), indent=2, no final newline.
        assert text == json.dumps(_configs(sample, p), indent=2)
        assert [config["block_id"] for config in json.loads(text)] == list(range(6))


def test_generate_matches_experiment_server_goldens(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    for case in ("groups_latin4", "choices", "init_final", "per_participant"):
        golden = json.loads((GOLDEN / f"{case}.json").read_text())
        code, _, _ = _run(capsys, "g", str(GOLDEN / f"{case}.toml"), "-r", "6", "-d", str(tmp_path))
        assert code == 0
        for p, blocks in golden.items():
            text = (tmp_path / f"{case}-participant_{p}.json").read_text()
            assert text == json.dumps([block["config"] for block in blocks], indent=2), (case, p)


def test_bad_config_one_line_error(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SAMPLE_CONFIG.replace('extends = "slow"\nconfig = { speed = 2.0 }', 'extends = "nope"\nconfig = {}'))
    for argv in (["verify-config-file", str(bad)], ["generate-config-json", str(bad), "-r", "2"]):
        code, out, err = _run(capsys, *argv)
        assert code == 2 and out == ""
        assert err == (
            f"xmanager: error: {bad}, block 'fast', key 'extends': "
            "`nope` is not a valid name. It must be a `name` of one of the blocks\n"
        )

    bad.write_text("[configuration]\norder = [['a']]\n[[blocks]]\nname = 'a'\nconfig = { x = 1\n")
    code, _, err = _run(capsys, "verify", str(bad))
    assert code == 2
    assert err.startswith(f"xmanager: error: {bad}:5: malformed TOML") and err.count("\n") == 1

    code, _, err = _run(capsys, "v", str(tmp_path / "missing.toml"))
    assert code == 2 and err.count("\n") == 1 and "missing.toml" in err


def test_bad_config_writes_no_files(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "tight.toml"
    # Two unique draws from one value: participant-dependent error, raised while expanding.
    bad.write_text(
        "[configuration]\norder = [['a', 'b']]\n"
        "[[blocks]]\nname = 'a'\nconfig = { x = { function_name = 'choices', args = [[1]], params = { unique = true } } }\n"
        "[[blocks]]\nname = 'b'\nextends = 'a'\nconfig = {}\n"
    )
    code, out, err = _run(capsys, "g", str(bad), "-r", "2", "-d", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert err.startswith(f"xmanager: error: {bad}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_deprecated_keys_warn_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "verify", str(GOLDEN / "deprecated_keys.toml"))
    assert code == 0
    assert [line.startswith("xmanager: warning: ") and "deprecated" in line for line in err.splitlines()] == [True] * 2


def test_subprocess_round_trip(tmp_path: pathlib.Path) -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [XMANAGER, "study", *argv], capture_output=True, text=True, cwd=tmp_path, env=os.environ, timeout=120
        )

    assert run("new-config-file", "s.toml").returncode == 0
    verify = run("verify-config-file", "s.toml")
    assert verify.returncode == 0 and "participant_5" in verify.stdout
    generate = run("generate-config-json", "s.toml", "-r", "2")
    assert generate.returncode == 0
    assert [json.loads(line) for line in generate.stdout.splitlines()] == [
        _configs(tmp_path / "s.toml", p) for p in (1, 2)
    ]
    again = run("new-config-file", "s.toml")
    assert again.returncode == 2
    assert again.stderr == "xmanager: error: s.toml already exists; not overwriting it\n"


def test_study_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["study", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("new-config-file", "verify-config-file", "generate-config-json"):
        assert name in out


def test_run_serves_the_study_until_shutdown(tmp_path: pathlib.Path) -> None:
    import http.client
    import socket
    import time

    config = tmp_path / "study.toml"
    assert subprocess.run([XMANAGER, "study", "new-config-file", str(config)], capture_output=True).returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([XMANAGER, "study", "run", str(config), "-h", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
        connection.request("POST", "/api/shutdown", body=b"")
        assert connection.getresponse().status == 200
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_run_refuses_a_public_bind_without_a_token(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "study.toml"
    subprocess.run([XMANAGER, "study", "new-config-file", str(config)], check=True, capture_output=True)
    result = subprocess.run([XMANAGER, "study", "run", str(config), "-h", "0.0.0.0", "-p", "0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.startswith("xmanager: error: ")
    assert "token" in result.stderr


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
    assert runner.invoke(study_cli.cli, ["r", "study.toml", "-a"], input="7\n").exit_code == 0
    assert calls[-1]["default_participant_index"] == 7
    assert runner.invoke(study_cli.cli, ["run", "study.toml", "--token", "t"]).exit_code == 0
    assert calls[-1]["token"] == "t"

    sample = tmp_path / "s.toml"
    assert study_cli.cli.main(["new", str(sample)], standalone_mode=False) == 0
    result = runner.invoke(study_cli.cli, ["verify-config-file", str(sample)])
    assert result.exit_code == 0 and f"{sample}: valid" in result.output
    result = runner.invoke(study_cli.cli, ["g", str(sample), "-i", "2"])
    assert result.exit_code == 0 and json.loads(result.stdout) == _configs(sample, 2)
    result = runner.invoke(study_cli.cli, ["v", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and result.stderr.startswith("experiment-server: error: ")
    assert runner.invoke(study_cli.cli, ["ui"]).exit_code == 2  # Not offered (experiment-server's textual UI).
