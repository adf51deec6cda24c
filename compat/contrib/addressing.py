"""Addresses of jobs that can be known before launch (they need the experiment and work unit ids only)."""

from __future__ import annotations


def k8s_pod_domain(
    job_name: str,
    experiment_id: int,
    work_unit_id: int,
    service: str = "experiments",
    namespace: str = "default",
) -> str:
    """The in-cluster DNS name and port (2222) of a job's pod, behind the headless Service ``service``."""
    host = f"{experiment_id}-{work_unit_id}-{job_name}"
    return f"{host}.{service}.{namespace}.svc.cluster.local:2222"
