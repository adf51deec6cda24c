"""Metadata of an experiment or a work unit: who created it, and its title, tags and notes.

The base ``ContextAnnotations`` keeps them in memory; a backend subclass persists each change
(our store does, in ``xm_local``).
"""

from __future__ import annotations

import attrs


@attrs.define
class ContextAnnotations:
    """User-editable annotations: a title, tags and notes."""

    title: str = ""
    tags: list[str] = attrs.field(factory=list)
    notes: str = ""

    def set_title(self, title: str) -> None:
        self.title = title

    def add_tags(self, *tags: str) -> None:
        self.tags.extend(tag for tag in tags if tag not in self.tags)

    def remove_tags(self, *tags: str) -> None:
        self.tags[:] = [tag for tag in self.tags if tag not in tags]

    def set_notes(self, notes: str) -> None:
        self.notes = notes


@attrs.define
class MetadataContext:
    """The metadata of an experiment or a unit: its creator and its annotations."""

    creator: str
    annotations: ContextAnnotations


__all__ = ["ContextAnnotations", "MetadataContext"]
