"""The commented sample study file that ``xmanager study new-config-file`` writes.

Our own text (experiment-server's ``new-config-file`` copies its ``sample_config.toml``; the two files differ,
the command's behaviour does not). A valid study for both: experiment-server 0.3.9 verifies and expands it as
we do (tests/xm_local/test_study_cli.py runs both on it when ``$XM_PEER_EXPERIMENT_SERVER`` is set).
"""

__all__ = ["SAMPLE_CONFIG"]

SAMPLE_CONFIG = """\
# A study design: which blocks (conditions) each participant goes through, in which order,
# and with which settings. The format is experiment-server's; see docs/studies.md.
#
#   xmanager study verify-config-file THIS_FILE              # logs the block orders of participants 1..5
#   xmanager study generate-config-json THIS_FILE -r 8       # the block configs of participants 1..8, as JSON
#   xmanager study generate-config-json THIS_FILE -r 8 -d configs/   # one .json file per participant
#   xmanager study run THIS_FILE                             # serve it (experiment-server's REST API)

[configuration]
# Block names, as a list of groups. Here: a single group of four conditions. A flat list is
# read as one group whose order follows `groups_strategy` alone. A table such as
# order = { "1" = ["a", "b"], "2" = ["b", "a"] } gives participant p the list under key
# ((p - 1) % N) + 1 (and then `groups_strategy` must be "as_is").
order = [["slow", "medium", "fast", "adaptive"]]

# How the groups are ordered, and the blocks within each group:
# "as_is", "randomize" or "latin_square" (balanced; every group must have the same size).
groups_strategy = "as_is"
within_groups_strategy = "latin_square"

# Blocks before and after the ordered ones ("as_is" or "randomize").
init_blocks = ["training"]
init_blocks_strategy = "as_is"
final_blocks = ["questionnaire"]
final_blocks_strategy = "as_is"

# Participant p draws from a generator seeded with random_seed + p, so the output is reproducible.
random_seed = 0

# A string "$name" that is a value in a block (or in its config, at any depth of tables) is
# replaced by the variable's value. Strings inside arrays stay as they are: ["$trials"] is kept.
[configuration.variables]
trials = 20

[[blocks]]
name = "training"
config = { speed = 1.0, trials = 5, feedback = true }

[[blocks]]
name = "slow"
[blocks.config]
speed = 0.5
trials = "$trials"
feedback = false
# A call to random.choices, drawn anew for every block that holds it (also through `extends`).
# Calls that share an `id` form one group; with unique = true no value repeats within the group.
target_size = { function_name = "choices", args = [[4, 6, 8, 10, 12, 14, 16, 18]], params = { unique = true }, id = "size" }
# args as a table are passed by keyword: three draws, "easy" three times as likely.
difficulty = { function_name = "choices", args = { population = ["easy", "hard"], weights = [3, 1], k = 3 } }

# `extends` copies another block's config; the keys given here win.
[[blocks]]
name = "medium"
extends = "slow"
config = { speed = 1.0 }

[[blocks]]
name = "fast"
extends = "slow"
config = { speed = 2.0 }

[[blocks]]
name = "adaptive"
extends = "slow"
config = { speed = 1.0, adaptive = true }

[[blocks]]
name = "questionnaire"
config = { form = "nasa-tlx" }
"""
