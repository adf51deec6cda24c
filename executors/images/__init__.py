"""Container images for executors: build contexts hashed by content, builds, loads, pulls and pushes.

``build`` is the interface (``ensure_image``, ``push_image``, ``docker_client``). A private Docker
engine and registry for tests is :mod:`xmanager.testing.docker_engine` (not for production).
"""
