"""Starting a study server process on a free loopback port for a test."""

from xmanager.testing.loopback import free_port, wait_listening
from xmanager.xm_local.studyserver import server_process


def start(config, timeout: float = 10.0, **kwargs):
    """``(process, port)`` of a started study server serving ``config``, once it accepts connections."""
    port = free_port()
    proc = server_process(config, port=port, **kwargs)
    proc.start()
    if not wait_listening(port, timeout, alive=proc.is_alive):
        proc.terminate()
        proc.join(5)
        raise AssertionError(f"the study server did not start (exit code {proc.exitcode})")
    return proc, port
