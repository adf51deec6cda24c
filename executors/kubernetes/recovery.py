"""Launch records: what ``recover`` needs to find a dead launcher's Jobs again.

Before its first create, ``launch`` writes one small JSON file per experiment folder
(``<experiment folder>/.kubernetes-launch-<random>.json``) listing, for every Job it is about to
create, the work unit, the job name and the handle's ``data`` (cluster, namespace, Job name,
work folder). A job with no record was never sent to the cluster; one with a record is looked
up by the labels and name the record gives.
"""

from __future__ import annotations

from xmanager.executors.launch_records import LaunchRecords, experiment_folder

PREFIX = ".kubernetes-launch-"
_RECORDS = LaunchRecords(PREFIX)
write = _RECORDS.write
read = _RECORDS.read

__all__ = ["PREFIX", "experiment_folder", "read", "write"]
