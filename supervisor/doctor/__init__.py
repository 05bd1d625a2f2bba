"""`llm-docker doctor`: the install's checks, one module per group, run by `run.py`."""
