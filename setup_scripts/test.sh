#!/usr/bin/env bash
# Installs everything the tests need into ./.venv, then runs the linter and the test suite.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" test editable
source setup_scripts/_system.sh
# rsync: `xmanager sweep push/pull`; tree: psweep's own tests (tests/compat); slurm-wlm: a real single-node Slurm cluster, started and stopped by
# the tests (tests/executors/slurm/conftest.py); slurmdbd + mariadb-server: the same with accounting;
# openssh-server: a private sshd as the "login node" of Slurm(cluster=...); chromium: the study
# server's web UI in a real browser (Playwright); wrk: bench/study_server.py; docker.io + docker-registry:
# a private Docker engine and image registry on loopback (tests/support/docker_support.py), busybox-static
# for the test base image;
# gcc/g++/gfortran: VE kernels compiled for the host backend; postgresql: a private server for the
# store tests (tests/support/postgres_support.py); openssl: test certificates for the Kubernetes TLS tests;
# bazel-bootstrap + bazel-rules-java: xm.BazelBinary on Local, built offline (tests/executors/local/test_bazel.py).
apt_install rsync tree slurm-wlm slurmdbd mariadb-server openssh-server chromium wrk \
  docker.io docker-registry busybox-static gcc g++ gfortran postgresql openssl bazel-bootstrap bazel-rules-java
.venv/bin/ruff check .
.venv/bin/python setup_scripts/typecheck.py  # mypy on every package under its import name (pyproject.toml [tool.mypy])
.venv/bin/python setup_scripts/build_docs.py  # the docs site and API reference (mkdocs.yml), warnings as errors
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
[ "$status" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$status"
