"""XManager's ``xmanager.contrib`` helpers, on this launcher's executors.

Each module keeps XManager's names and behaviour where it needs no Google service; where it
does (a GCS bucket, a remote controller), it says so with a one-line error. See
``docs/xmanager.md``.
"""
