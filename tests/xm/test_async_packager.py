"""AsyncPackager batching, and Experiment.package_async with and without a batching packager."""

import asyncio
import pickle

import pytest
from xm_fakes import FakeSpec
from xmanager import xm
from xmanager.xm import async_packager


def _packageable(name):
    return xm.binary(FakeSpec(), f"/bin/{name}")


def test_one_batch_for_queued_and_extra_packageables():
    batches = []

    def package_batch(packageables):
        batches.append([p.executable_spec.name for p in packageables])
        return [xm.Executable(name=p.executable_spec.name) for p in packageables]

    packager = async_packager.AsyncPackager(package_batch)
    first, second = packager.add(_packageable("a")), packager.add(_packageable("b"))
    [extra] = packager.package([_packageable("c")])
    assert batches == [["a", "b", "c"]]
    assert extra.name == "c"

    async def results():
        return (await first).name, (await second).name

    assert asyncio.run(results()) == ("a", "b")
    assert packager.package() == []  # Nothing queued: no batch.
    assert len(batches) == 1


def test_a_failed_batch_fails_every_queued_awaitable():
    def broken(packageables):
        raise OSError("no disk")

    packager = async_packager.AsyncPackager(broken)
    queued = packager.add(_packageable("a"))
    with pytest.raises(OSError):
        packager.package()

    async def wait():
        await queued

    with pytest.raises(OSError, match="no disk"):
        asyncio.run(wait())


def test_unpackaged_awaitable_cannot_be_pickled_or_awaited():
    packager = async_packager.AsyncPackager(lambda ps: [xm.Executable(name="x") for _ in ps])
    queued = packager.add(_packageable("a"))
    with pytest.raises(async_packager.PackageHasNotBeenCalledError):
        pickle.dumps(queued)
    packager.package()
    assert pickle.loads(pickle.dumps(queued)).__class__ is async_packager.PicklableAwaitableImpl


class BatchingExperiment(xm.Experiment):
    calls = []
    _async_packager = async_packager.AsyncPackager(
        lambda packageables: BatchingExperiment.calls.append(len(packageables))
        or [xm.Executable(name=p.executable_spec.name) for p in packageables]
    )


class PackagingOnAwait(xm.Experiment):
    @classmethod
    def package(cls, packageables=()):
        return [xm.Executable(name=p.executable_spec.name) for p in packageables]


def test_experiment_package_async_batches_with_a_packager():
    first = BatchingExperiment.package_async(_packageable("a"))
    second = BatchingExperiment.package_async(_packageable("b"))
    assert BatchingExperiment.package() == []
    assert BatchingExperiment.calls == [2]

    async def names():
        return [(await first).name, (await second).name]

    assert asyncio.run(names()) == ["a", "b"]


def test_experiment_package_async_without_a_packager_packages_when_awaited():
    async def name():
        return (await PackagingOnAwait.package_async(_packageable("z"))).name

    assert asyncio.run(name()) == "z"
    with pytest.raises(NotImplementedError):
        xm.Experiment.package([_packageable("z")])
