"""Job, JobGroup, Executable and Packageable construction and validation (XManager's permissive Job)."""

import pytest
from xm_fakes import FakeExecutor, FakeSpec, make_job
from xmanager import xm


class FakeExecutableSpec(xm.ExecutableSpec):
    @property
    def name(self) -> str:
        return "fake"


def test_executor_spec_class_attribute():
    assert isinstance(FakeExecutor.Spec(), xm.ExecutorSpec)


def test_job_converts_args_and_keeps_env_values():
    job = make_job(args={"lr": 0.1, "on": True}, env_vars={"SEED": 3, "_X1": "y"})
    assert isinstance(job.args, xm.SequentialArgs)
    assert job.args.to_list() == ["--lr=0.1", "--on"]
    assert job.env_vars == {"SEED": 3, "_X1": "y"}  # Made strings only when launched.
    assert job.name == ""
    assert make_job(name=None).name == ""


def test_job_defaults_are_empty_and_not_shared():
    first, second = make_job(), make_job()
    assert first.args.to_list() == []
    assert first.env_vars == {}
    first.env_vars["A"] = "1"
    assert second.env_vars == {}
    assert second.args.to_list() == []


def test_job_args_list_is_positional():
    assert make_job(args=["a", "b"]).args.to_list() == ["a", "b"]


def test_job_args_bare_string_rejected():
    with pytest.raises(ValueError):
        make_job(args="--lr=1")


@pytest.mark.parametrize("bad", ["1ABC", "A-B", "A B", "", "X=Y", "É", "A\n"])
def test_job_bad_env_var_name_names_it(bad):
    with pytest.raises(ValueError) as info:
        make_job(env_vars={"GOOD": "1", bad: "v"})
    assert repr(bad) in str(info.value)


def test_job_bad_env_var_name_message():
    with pytest.raises(ValueError) as info:
        make_job(env_vars={"A-B": "1"})
    assert str(info.value) == "Environment variables names must conform to [a-zA-Z_][a-zA-Z0-9_]*. Got 'A-B'."


def test_job_assignment_is_neither_converted_nor_validated_until_launch():
    """As XManager's attrs classes: assignment after construction stores what it is given."""
    from xmanager.xm import job_operators

    job = make_job()
    job.env_vars = {"A-B": "1"}
    job.args = ["p"]
    assert job.args == ["p"]
    with pytest.raises(ValueError, match="'A-B'"):
        job_operators.named_jobs(job)
    job.env_vars = {}
    [launched] = job_operators.named_jobs(job)
    assert launched.args == xm.merge_args(["p"])


def test_job_non_string_env_var_name_is_a_type_error():
    with pytest.raises(TypeError, match="expected string or bytes-like object, got 'int'"):
        make_job(env_vars={5: "v"})


def test_job_and_packageable_are_xmanager_attrs_classes():
    job = make_job()
    with pytest.raises(TypeError, match="unhashable"):
        hash(job)
    job.extra = 1  # A __dict__, as attr.s classes have.
    assert xm.Job(job.executable, job.executor, name="a") < xm.Job(job.executable, job.executor, name="b")
    packageable = xm.Packageable(FakeExecutableSpec(), FakeSpec())
    with pytest.raises(TypeError, match="unhashable"):
        hash(packageable)


def test_packageable_bad_env_var_name_names_it():
    with pytest.raises(ValueError, match="'BAD-NAME'"):
        xm.Packageable(FakeExecutableSpec(), FakeSpec(), env_vars={"BAD-NAME": "1"})


def test_packageable_converts_args():
    packageable = xm.Packageable(FakeExecutableSpec(), FakeSpec(), args={"a": 1}, env_vars={"N": 2})
    assert packageable.args == xm.merge_args({"a": 1})
    assert packageable.env_vars == {"N": 2}
    assert xm.Packageable(FakeExecutableSpec(), FakeSpec()).args == xm.merge_args([])


def test_executable_name_is_positional_and_env_becomes_strings():
    exe = xm.Executable("x", args=["p"], env_vars={"K": 1})
    assert exe.name == "x"
    assert repr(exe) == "Executable(name='x')"  # Our args and env_vars stay out of XManager's repr.
    assert exe.args.to_list() == ["p"]
    assert exe.env_vars == {"K": "1"}
    with pytest.raises(TypeError):
        xm.Executable("x", ["p"])  # type: ignore[misc] - args and env_vars are keyword-only.
    with pytest.raises(ValueError, match="'1K'"):
        xm.Executable(name="x", env_vars={"1K": "v"})


def test_job_accepts_any_objects_and_launching_checks_them():
    """As in XManager, a Job holds what it is given (mocks in tests); the launch path checks it."""
    from xmanager.xm import job_operators

    job = xm.Job(FakeExecutableSpec(), FakeExecutor())
    with pytest.raises(TypeError, match="Executable"):
        job_operators.named_jobs(job)
    with pytest.raises(TypeError, match="Executor"):
        job_operators.named_jobs(xm.Job(xm.Executable(name="x"), FakeSpec()))


def test_job_group_holds_jobs_and_constraints():
    class SameMachine(xm.Constraint):
        pass

    a, b = make_job(), make_job()
    inner = xm.JobGroup(b=b)
    constraint = SameMachine()
    group = xm.JobGroup(a=a, inner=inner, constraints=[constraint])
    assert group.jobs == {"a": a, "inner": inner}
    assert group.constraints == [constraint]
    assert xm.JobGroup(a=a).constraints == []
    assert xm.JobGroup(constraints=(constraint,)).constraints == [constraint]
    assert repr(group).startswith("<xmanager.xm.job_blocks.JobGroup object at 0x")  # No repr of its own.


def test_job_group_may_be_empty_and_holds_any_members():
    assert xm.JobGroup().jobs == {}
    generator = object()
    assert xm.JobGroup(gen=generator).jobs == {"gen": generator}


def test_get_args_for_all_jobs():
    job = make_job()
    group = xm.JobGroup(a=make_job(), inner=xm.JobGroup(b=make_job(), c=make_job()))
    args = {"seed": 1}
    assert xm.get_args_for_all_jobs(job, args) == {"args": args}
    assert xm.get_args_for_all_jobs(job, args)["args"] is not args  # A copy per job.
    assert xm.get_args_for_all_jobs(group, args) == {
        "a": {"args": args},
        "inner": {"b": {"args": args}, "c": {"args": args}},
    }
