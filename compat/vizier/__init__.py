"""XManager's ``xmanager.vizier`` names. Vizier (Vertex AI's hyperparameter search) is not driven by this
launcher: its entry points exist so scripts import, and fail with one error saying that they need the
Vizier service. Searches that need no service: ``experiment.add_search`` (``docs/search.md``, which maps a study config onto it).
"""
