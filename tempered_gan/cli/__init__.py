"""The command line: ``tempered-gan COMMAND``."""
from tempered_gan.cli.main import main

__all__ = ["main"]
