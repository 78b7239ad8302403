"""Configuration: typed settings, secrets and the production gate."""

from bastion.config.errors import ConfigError, InsecureConfigError
from bastion.config.settings import Settings

__all__ = ["ConfigError", "InsecureConfigError", "Settings"]
