"""The agent image: Dockerfile, entrypoint and install scripts, shipped as package data."""
