"""Container images for executors: build contexts hashed by content, builds, loads, pulls and pushes.

``build`` is the interface (``ensure_image``, ``push_image``, ``docker_client``); ``devengine``
starts a private Docker engine and registry for tests and trying things out.
"""
