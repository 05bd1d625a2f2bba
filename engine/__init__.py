"""The Docker Engine adapter: the only package that talks to the engine (through aiodocker)."""
