"""The SQLite state database: one file under ``state_dir``, one writer."""

from netalert.state.db import Database, open_database

__all__ = ["Database", "open_database"]
