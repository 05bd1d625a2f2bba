"""Planning a launch: argv -> request -> config, guards, host facts -> container spec."""

__version__ = "0.1.0"
