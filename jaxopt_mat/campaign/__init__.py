"""The campaign layer: its configuration, its folder on disk, the user's tables and the snapshot read from them.

- :mod:`~jaxopt_mat.campaign.config`: the schema of ``campaign.toml`` and its TOML round trip
  (:mod:`~jaxopt_mat.campaign.objective`: the objective and the outcome constraints;
  :mod:`~jaxopt_mat.campaign.schema`: reserved column names and shared checks).
- :mod:`~jaxopt_mat.campaign.tables`: measurement files, targets and suggestion files, as text.
- :mod:`~jaxopt_mat.campaign.pending`: suggestion ids, and which suggested rows are still pending.
- :mod:`~jaxopt_mat.campaign.folder`: the folder, its lock and its atomic writes (the only writer).
- :mod:`~jaxopt_mat.campaign.snapshot`: the immutable value a command reads the folder into, once.
"""

from jaxopt_mat.campaign.config import (BATCH_COLUMN, CONFIG_FILE, DEFAULT_WINDOW, RESERVED_COLUMNS, STATUS_COLUMN,
                                        SUGGESTION_COLUMN, Config, Input, Objective, config_to_toml, load_config, parse_config,
                                        widen_bound)
from jaxopt_mat.campaign.folder import (OBSERVATIONS_FILE, STATE_FILE, SUGGESTIONS_DIR, CampaignFolder,
                                        atomic_write_text)
from jaxopt_mat.campaign.pending import SuggestedRows, file_number, suggestion_ids
from jaxopt_mat.campaign.snapshot import Snapshot, read_snapshot
from jaxopt_mat.campaign.tables import (Measurements, read_target, suggestion_csv, target_on_grid,
                                        validate_measurements)

__all__ = [
    "BATCH_COLUMN", "CONFIG_FILE", "DEFAULT_WINDOW", "OBSERVATIONS_FILE", "RESERVED_COLUMNS", "STATE_FILE", "STATUS_COLUMN",
    "SUGGESTION_COLUMN", "SUGGESTIONS_DIR", "CampaignFolder", "Config", "Input", "Measurements", "Objective", "Snapshot",
    "SuggestedRows", "atomic_write_text", "config_to_toml", "file_number", "load_config", "parse_config",
    "read_snapshot", "read_target", "suggestion_csv", "suggestion_ids", "target_on_grid", "validate_measurements", "widen_bound",
]
