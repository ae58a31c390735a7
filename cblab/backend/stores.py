"""The data behind the two services: users from a JSON fixture, orders from SQLite."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path

__all__ = ["DataError", "OrdersStore", "UsersStore", "build_orders_db"]

# GitHub's rule: alphanumerics and single inner hyphens, at most 39 characters
USERNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
ORDER_ID = re.compile(r"^[0-9]{1,18}$")

ORDER_COLUMNS = ("id", "user_login", "item", "amount_cents", "status", "created_at")


class DataError(ValueError):
    """A fixture file is missing or malformed."""


class UsersStore:
    """GitHub-shaped user records, pre-encoded as JSON; logins match case-insensitively."""

    def __init__(self, path: Path) -> None:
        try:
            users = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load users from {path}: {exc}") from None
        if not isinstance(users, list) or not all(
            isinstance(u, dict) and isinstance(u.get("login"), str) for u in users
        ):
            raise DataError(f"{path}: expected a list of objects with a 'login'")
        self._by_login = {
            u["login"].lower(): json.dumps(u, separators=(",", ":")).encode() for u in users
        }
        self.logins = [u["login"] for u in users]

    def get(self, username: str) -> bytes | None:
        if not USERNAME.match(username):
            return None
        return self._by_login.get(username.lower())


def build_orders_db(csv_path: Path, db_path: Path) -> int:
    """(Re)build the orders SQLite database from the CSV; returns the row count."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != ORDER_COLUMNS:
                raise DataError(f"{csv_path}: columns must be {', '.join(ORDER_COLUMNS)}")
            rows = [
                (
                    int(r["id"]),
                    r["user_login"],
                    r["item"],
                    int(r["amount_cents"]),
                    r["status"],
                    r["created_at"],
                )
                for r in reader
            ]
    except OSError as exc:
        raise DataError(f"cannot read orders from {csv_path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise DataError(f"{csv_path}: bad row: {exc}") from None
    db_path.unlink(missing_ok=True)
    db = sqlite3.connect(db_path)
    try:
        with db:
            db.execute(
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_login TEXT NOT NULL,"
                " item TEXT NOT NULL, amount_cents INTEGER NOT NULL, status TEXT NOT NULL,"
                " created_at TEXT NOT NULL)"
            )
            db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", rows)
    finally:
        db.close()
    return len(rows)


class OrdersStore:
    """Read-only lookups in the orders database (one connection, event-loop thread:
    a primary-key lookup takes microseconds, less than a thread hop)."""

    def __init__(self, db_path: Path) -> None:
        uri = f"{db_path.resolve().as_uri()}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)

    def get(self, order_id: str) -> bytes | None:
        if not ORDER_ID.match(order_id):
            return None
        row = self._db.execute(
            "SELECT id, user_login, item, amount_cents, status, created_at"
            " FROM orders WHERE id = ?",
            (int(order_id),),
        ).fetchone()
        if row is None:
            return None
        return json.dumps(
            dict(zip(ORDER_COLUMNS, row, strict=True)), separators=(",", ":")
        ).encode()

    def close(self) -> None:
        self._db.close()
