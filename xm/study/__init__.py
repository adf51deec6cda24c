"""Study designs (participants, counterbalanced blocks), compatible with experiment-server's TOML files."""

from xmanager.xm.study.config import (
    Study,
    StudyConfigError,
    balanced_latin_square,
    load_study,
    process_config_file,
    study_from_dict,
    verify_config,
)
from xmanager.xm.study.errors import ExperimentServerConfigurationException, ExperimentServerException

__all__ = [
    "ExperimentServerConfigurationException",
    "ExperimentServerException",
    "Study",
    "StudyConfigError",
    "balanced_latin_square",
    "load_study",
    "process_config_file",
    "study_from_dict",
    "verify_config",
]
