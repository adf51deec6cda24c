"""XManager's ``xmanager.cloud`` entry points, mapped onto this launcher's Vertex AI and Kubernetes executors.

Scripts that import ``vertex``, ``kubernetes``, ``auth``, ``utils`` or ``build_image`` from
here get the same names; each maps to ``executors/vertex``, ``executors/kubernetes`` or
``executors/images``. Google SDKs load only when a function needs them, and a missing
service (no credentials, no project, no cluster) is one error saying so. See ``docs/xmanager.md``.
"""
