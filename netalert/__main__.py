"""Allows ``python -m netalert``."""

from netalert.cli import main

main()
