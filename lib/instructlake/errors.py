"""Errors shared by modules that cannot import each other."""


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the key and where it came from."""
