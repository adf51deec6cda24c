"""The sbatch options a Slurm executor's requirements become (no cluster needed)."""

from xmanager import xm, xm_local
from xmanager.executors.slurm.backend import directives


def test_gpu_requirements_become_gres_with_the_sites_type_names():
    def gres(**resources):
        lines = directives(xm_local.Slurm(requirements=xm.JobRequirements(**resources)), ntasks=1)
        return [line for line in lines if "--gres" in line]

    assert gres(v100=2) == ["--gres=gpu:v100:2"]
    assert gres(l4_24th=1) == ["--gres=gpu:l4:1"]  # XManager's L4_24TH; sites call it l4.
    assert gres(local_gpu=1) == ["--gres=gpu:1"]
    assert gres(cpu=2) == []
