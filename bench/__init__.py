"""Benchmarks (`python -m bench.<name>`), each printing ratios against a baseline measured in the same run.

They drive the product with the test rigs (`testbed`: images, users, processes), which only a
checkout of the repository has; an installed llm-docker says so in one line.
"""

import importlib.util
import sys

if importlib.util.find_spec("testbed") is None:
    sys.exit("bench: needs a checkout of the llm-docker repository (its test rigs, testbed/): "
             "run `python -m bench.<name>` from the checkout's top folder")
