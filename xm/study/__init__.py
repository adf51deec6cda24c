"""Study designs (participants, counterbalanced blocks), compatible with experiment-server's TOML files."""

from xmanager.xm.study.config import Study, StudyConfigError, balanced_latin_square, load_study, study_from_dict

__all__ = ["Study", "StudyConfigError", "balanced_latin_square", "load_study", "study_from_dict"]
