"""The commented sample study file that ``xmanager study new-config-file`` writes."""

__all__ = ["SAMPLE_CONFIG"]

SAMPLE_CONFIG = """\
# A study design: which blocks (conditions) each participant goes through, in which order,
# and with which settings. The format is experiment-server's; see docs/studies.md.
#
#   xmanager study verify-config-file THIS_FILE              # block orders of participants 1..5
#   xmanager study generate-config-json THIS_FILE -r 8       # one JSON line per participant
#   xmanager study generate-config-json THIS_FILE -r 8 -d configs/

[configuration]
# Block names, as a list of groups. Here: a single group of four conditions. A flat list is
# read as one group whose order follows `groups_strategy` alone. A table such as
# order = { "1" = ["a", "b"], "2" = ["b", "a"] } gives participant p the list under key
# ((p - 1) % N) + 1.
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

# A string "$name" in a block is replaced by the variable's value (xmanager also does this
# inside lists; experiment-server 0.3.9 does not).
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
