"""Minimal executor classes for tests of the backend-agnostic ``xm`` API."""

from xmanager import xm


class FakeSpec(xm.ExecutorSpec):
    pass


class FakeExecutor(xm.Executor):
    Spec = FakeSpec


def make_job(exe_name="x", **kwargs):
    return xm.Job(xm.Executable(name=exe_name), FakeExecutor(), **kwargs)
