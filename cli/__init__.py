"""The command-line layer: `cld`, `ocd` and `llm-docker`, wiring planning, image and supervisor."""
