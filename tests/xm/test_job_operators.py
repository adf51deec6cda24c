"""named_jobs / unit_parameters (what add() receives turned into named jobs with final args), and XManager's
job operators (flatten_jobs, collect_jobs_by_filter, get_jobs, constraint cliques)."""

import copy

import pytest
from xm_fakes import FakeExecutor, make_job
from xmanager import xm
from xmanager.xm import job_operators


def by_name(jobs):
    return {job.name: job for job in jobs}


def test_lone_job_named_after_executable():
    [job] = job_operators.named_jobs(make_job("trainer"))
    assert job.name == "trainer"


def test_lone_job_keeps_its_own_name():
    [job] = job_operators.named_jobs(make_job("trainer", name="mine"))
    assert job.name == "mine"


def test_group_names_are_key_paths_joined_with_underscore():
    group = xm.JobGroup(
        server=make_job("srv"),
        workers=xm.JobGroup(a=make_job("w"), b=make_job("w"), deep=xm.JobGroup(c=make_job("w"))),
    )
    names = [job.name for job in job_operators.named_jobs(group)]
    assert names == ["server", "workers_a", "workers_b", "workers_deep_c"]


def test_group_member_with_own_name_keeps_it():
    group = xm.JobGroup(a=make_job(name="custom"), b=make_job())
    assert [job.name for job in job_operators.named_jobs(group)] == ["custom", "b"]


def test_job_xmanager_form_args_and_env_vars():
    job = make_job(args={"lr": 0.1, "steps": 10}, env_vars={"A": "1", "B": "2"})
    [flat] = job_operators.named_jobs(job, {"args": {"lr": 0.5, "extra": True}, "env_vars": {"B": 3, "C": "c"}})
    assert flat.args.to_list() == ["--lr=0.5", "--steps=10", "--extra"]
    assert flat.env_vars == {"A": "1", "B": "3", "C": "c"}


def test_job_xmanager_form_args_only_or_env_only():
    job = make_job(args={"lr": 0.1})
    [only_args] = job_operators.named_jobs(job, {"args": ["pos"]})
    assert only_args.args.to_list() == ["--lr=0.1", "pos"]
    [only_env] = job_operators.named_jobs(job, {"env_vars": {"E": "1"}})
    assert only_env.args.to_list() == ["--lr=0.1"]
    assert only_env.env_vars == {"E": "1"}


def test_job_shorthand_args_mapping():
    job = make_job(args={"lr": 0.1, "steps": 10})
    [flat] = job_operators.named_jobs(job, {"lr": 0.3, "seed": 7})
    assert flat.args.to_list() == ["--lr=0.3", "--steps=10", "--seed=7"]
    assert flat.env_vars == {}


def test_job_shorthand_args_list_and_sequential_args():
    job = make_job(args={"lr": 0.1})
    [flat] = job_operators.named_jobs(job, ["--", "pos"])
    assert flat.args.to_list() == ["--lr=0.1", "--", "pos"]
    [flat] = job_operators.named_jobs(job, xm.merge_args({"lr": 1}))
    assert flat.args.to_list() == ["--lr=1"]


def test_empty_mapping_args_change_nothing():
    job = make_job(args={"lr": 0.1})
    [flat] = job_operators.named_jobs(job, {})
    assert flat.args.to_list() == ["--lr=0.1"]


def test_xmanager_form_env_vars_are_validated():
    with pytest.raises(ValueError, match="'BAD-NAME'"):
        job_operators.named_jobs(make_job(), {"env_vars": {"BAD-NAME": "1"}})


def test_group_args_map_per_member():
    group = xm.JobGroup(
        server=make_job(args={"port": 1}),
        client=make_job(args={"port": 1}),
        inner=xm.JobGroup(w=make_job()),
        untouched=make_job(args={"u": 1}),
    )
    jobs = by_name(
        job_operators.named_jobs(
            group,
            {
                "server": {"args": {"port": 8080}, "env_vars": {"ROLE": "server"}},
                "client": {"port": 9090},
                "inner": {"w": {"args": ["x"]}},
            },
        )
    )
    assert jobs["server"].args.to_list() == ["--port=8080"]
    assert jobs["server"].env_vars == {"ROLE": "server"}
    assert jobs["client"].args.to_list() == ["--port=9090"]
    assert jobs["client"].env_vars == {}
    assert jobs["inner_w"].args.to_list() == ["x"]
    assert jobs["untouched"].args.to_list() == ["--u=1"]


def test_group_args_from_get_args_for_all_jobs():
    group = xm.JobGroup(a=make_job(), inner=xm.JobGroup(b=make_job()))
    jobs = job_operators.named_jobs(group, xm.get_args_for_all_jobs(group, {"seed": 3}))
    assert [(job.name, job.args.to_list()) for job in jobs] == [("a", ["--seed=3"]), ("inner_b", ["--seed=3"])]


def test_group_unknown_member_keys_listed():
    group = xm.JobGroup(server=make_job(), client=make_job())
    with pytest.raises(ValueError) as info:
        job_operators.named_jobs(group, {"sever": {"port": 1}, "clinet": {}, "server": {}})
    message = str(info.value)
    assert "'sever'" in message and "'clinet'" in message
    assert "server" in message and "client" in message  # The members are listed.


def test_group_shorthand_flat_args_rejected():
    # Flat args for a group are almost always a mistake: they name no member.
    group = xm.JobGroup(server=make_job())
    with pytest.raises(ValueError, match="'lr'"):
        job_operators.named_jobs(group, {"lr": 0.1})


def test_group_non_mapping_args_rejected():
    with pytest.raises(TypeError):
        job_operators.named_jobs(xm.JobGroup(a=make_job()), ["--x"])


def test_duplicate_names_rejected():
    group = xm.JobGroup(a=make_job(name="same"), b=make_job(name="same"))
    with pytest.raises(ValueError, match="'same'"):
        job_operators.named_jobs(group)


def test_duplicate_names_across_nesting_rejected():
    group = xm.JobGroup(a_b=make_job(), a=xm.JobGroup(b=make_job()))
    with pytest.raises(ValueError, match="'a_b'"):
        job_operators.named_jobs(group)


def test_user_job_is_never_mutated():
    job = make_job("exe", args={"lr": 0.1}, env_vars={"A": "1"})
    group = xm.JobGroup(one=job, two=job)
    before_args = copy.deepcopy(job.args)
    before_env = dict(job.env_vars)

    [lone] = job_operators.named_jobs(job, {"args": {"lr": 9, "new": 1}, "env_vars": {"A": "2", "B": "3"}})
    jobs = job_operators.named_jobs(group, {"one": {"lr": 2}, "two": {"args": ["p"], "env_vars": {"C": "c"}}})

    assert job.name == ""
    assert job.args == before_args
    assert job.env_vars == before_env
    assert lone is not job
    assert all(flat is not job for flat in jobs)
    assert [flat.name for flat in jobs] == ["one", "two"]
    assert jobs[0].args.to_list() == ["--lr=2"]
    assert jobs[1].args.to_list() == ["--lr=0.1", "p"]
    assert jobs[1].env_vars == {"A": "1", "C": "c"}
    # Mutating a flattened copy does not reach the user's job either.
    jobs[0].args = xm.merge_args(jobs[0].args, {"z": 1})
    jobs[0].env_vars["Z"] = "1"
    assert job.args == before_args
    assert job.env_vars == before_env


def test_same_job_added_twice_gets_fresh_copies():
    job = make_job(args={"lr": 0.1})
    [first] = job_operators.named_jobs(job, {"lr": 1})
    [second] = job_operators.named_jobs(job, {"lr": 2})
    assert first.args.to_list() == ["--lr=1"]
    assert second.args.to_list() == ["--lr=2"]
    assert first.name == second.name == "x"


def test_flattened_executable_and_executor_are_kept():
    executable, executor = xm.Executable(name="e"), FakeExecutor()
    [flat] = job_operators.named_jobs(xm.Job(executable, executor))
    assert flat.executable is executable
    assert flat.executor is executor


def test_unit_parameters_lone_job_keywords():
    [job] = job_operators.named_jobs(make_job(args=["pos"]), {"lr": 0.2, "seed": 1})
    assert job_operators.unit_parameters([job], grouped=False) == {"lr": 0.2, "seed": 1}


def test_unit_parameters_grouped_prefixes_job_name():
    group = xm.JobGroup(server=make_job(args={"port": 1}), inner=xm.JobGroup(w=make_job(args=["p"])))
    jobs = job_operators.named_jobs(group, {"inner": {"w": {"lr": 0.5}}})
    assert job_operators.unit_parameters(jobs, grouped=True) == {"server.port": 1, "inner_w.lr": 0.5}


def test_unit_parameters_empty():
    assert job_operators.unit_parameters([], grouped=True) == {}
    [job] = job_operators.named_jobs(make_job(args=["only", "positionals"]))
    assert job_operators.unit_parameters([job], grouped=False) == {}


def test_flatten_jobs_returns_the_group_members_themselves():
    a, b = make_job(name="a"), make_job()
    group = xm.JobGroup(a=a, inner=xm.JobGroup(b=b))
    flat = job_operators.flatten_jobs(group)
    assert flat[0] is a and flat[1] is b
    assert b.name == ""  # Not named by flattening.
    assert job_operators.collect_jobs_by_filter(group, lambda job: job.name == "a") == [a]


def test_collect_rejects_non_jobs():
    with pytest.raises(TypeError):
        job_operators.flatten_jobs(xm.JobGroup(gen=lambda unit: None))


def test_shallow_copy_and_populate_names():
    job = make_job("exe")
    group = xm.JobGroup(a=job, inner=xm.JobGroup(b=make_job()))
    copied = job_operators.shallow_copy_job_type(group)
    job_operators.populate_job_names(copied)
    assert [member.name for member in job_operators.flatten_jobs(copied)] == ["a", "inner_b"]
    assert job.name == "" and copied.jobs["a"] is not job
    assert copied.jobs["a"].executable is job.executable
    lone = job_operators.shallow_copy_job_type(job)
    job_operators.populate_job_names(lone)
    assert lone.name == "exe"

    async def generator(unit):
        pass

    assert job_operators.shallow_copy_job_type(generator) is generator


def test_apply_args_refuses_unknown_keys():
    with pytest.raises(ValueError, match="abra"):
        job_operators.apply_args(make_job(), {"abra": "kadabra"})
    with pytest.raises(ValueError, match="'eval'"):
        job_operators.apply_args(xm.JobGroup(learner=make_job()), {"eval": {"args": {}}})


def test_get_jobs_by_name():
    a, b = make_job(name="a"), make_job(name="b")
    assert job_operators.get_jobs(xm.JobGroup(x=a, y=xm.JobGroup(z=b))) == {"a": a, "b": b}
    with pytest.raises(ValueError, match="^a is duplicated in the experiment.$"):
        job_operators.get_jobs(xm.JobGroup(x=a, y=make_job(name="a")))
    # As in XManager, a nested group's jobs are merged in unchecked: the later one wins.
    later = make_job(name="a")
    assert job_operators.get_jobs(xm.JobGroup(x=a, y=xm.JobGroup(z=later))) == {"a": later}


def test_constraint_cliques_cover_nested_jobs():
    class Same(xm.Constraint):
        pass

    outer, inner = Same(), Same()
    j1, j2, j3 = make_job(name="1"), make_job(name="2"), make_job(name="3")
    group = xm.JobGroup(j1=j1, g=xm.JobGroup(j2=j2, j3=j3, constraints=[inner]), constraints=[outer])
    first, second = job_operators.aggregate_constraint_cliques(group)
    assert first.constraint is outer and first.jobs == [j1, j2, j3] and first.size == 2
    assert first.parent_group_name is None and first.group_name.startswith("jobgroup_0_")
    assert second.constraint is inner and second.jobs == [j2, j3]
    assert second.parent_group_name == first.group_name and second.group_name.startswith("jobgroup_1_")


def test_xmanager_operator_edges():
    job = make_job()
    assert job_operators.aggregate_constraint_cliques(job) == []  # A lone job has no cliques.
    assert job_operators.flatten_jobs(job) == [job]
    generator = lambda: None  # noqa: E731
    assert job_operators.shallow_copy_job_type(generator) is generator
    members = [job]
    copied = job_operators.shallow_copy_job_type(members)
    assert copied == members and copied is not members  # Anything else is copy.copy'd.
    for operator in (job_operators.flatten_jobs, job_operators.aggregate_constraint_cliques):
        with pytest.raises(TypeError, match=r"^Unsupported job_type: 1$"):
            operator(xm.JobGroup(a=1))
    clique = job_operators.ConstraintClique(constraint=1, jobs=[])
    assert repr(clique) == "ConstraintClique(constraint=1, jobs=[], group_name=None, size=None, parent_group_name=None)"
