"""Launch records: what ``recover`` needs to find a dead launcher's CustomJobs again.

Before its first create, ``launch`` writes one small JSON file per experiment folder
(``<experiment folder>/.vertex-launch-<random>.json``) listing, for every job it is about to
send, the work unit, the job name and where its CustomJob goes (endpoint, project, region),
its worker pool and its create token. A job with no record was never sent to Vertex AI; one
with a record is looked up by its experiment label and create token.
"""

from __future__ import annotations

from xmanager.executors.launch_records import LaunchRecords, experiment_folder

PREFIX = ".vertex-launch-"
_RECORDS = LaunchRecords(PREFIX)
write = _RECORDS.write
read = _RECORDS.read

__all__ = ["PREFIX", "experiment_folder", "read", "write"]
