"""Test infrastructure: private servers to try and test executors on one machine. NOT FOR PRODUCTION.

Everything here runs throwaway daemons, as root, with authentication turned off, bound to
127.0.0.1 and keeping their state in a folder you name:

- :mod:`.slurm_cluster`: a single-node Slurm cluster (``auth/none``, daemons as root).
- :mod:`.docker_engine`: a private Docker engine and image registry (no TLS, no auth).
- :mod:`.loopback`: free ports and readiness waits on 127.0.0.1 for such servers.

``xmanager devcluster slurm|docker start|stop|status DIR`` starts and stops them from a shell
(:mod:`.devcluster_cli`). The executors never import this package.
"""
