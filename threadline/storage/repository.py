"""What every repository shares: turning rows into Python values and back, per dialect."""

from __future__ import annotations

from typing import Any, ClassVar

from threadline.storage.database import Database, Row


class Repository:
    """A repository over the connector; subclasses name their JSON and time columns."""

    json_columns: ClassVar[tuple[str, ...]] = ()
    time_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, db: Database) -> None:
        self.db = db

    def decode(self, row: Row | None) -> Row | None:
        if row is None:
            return None
        for key in self.json_columns:
            if key in row:
                row[key] = self.db.json_value(row[key])
        for key in self.time_columns:
            if key in row:
                row[key] = self.db.time_value(row[key])
        return row

    def decode_all(self, rows: list[Row]) -> list[Row]:
        return [r for r in map(self.decode, rows) if r is not None]

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        params = dict(values)
        for key in self.json_columns:
            if key in params:
                params[key] = self.db.json_param(params[key])
        for key in self.time_columns:
            if key in params and params[key] is not None:
                params[key] = self.db.time_param(params[key])
        return params
