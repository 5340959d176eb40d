"""The local engine's records, in one SQLite file under the state folder: executions and their steps, the
step cache, the local Model Registry (model package groups and versioned packages), and each package's accuracy
in service as `cardamage monitor --local` measured it."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.local.storage import private_folder

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL, parameters TEXT NOT NULL,
    started REAL NOT NULL, ended REAL, failure TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    execution TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
    started REAL, ended REAL, failure TEXT, log TEXT, cached_from TEXT, properties TEXT,
    PRIMARY KEY (execution, name)
);
CREATE TABLE IF NOT EXISTS cache (
    pipeline TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL, execution TEXT NOT NULL,
    properties TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (pipeline, step, key)
);
CREATE TABLE IF NOT EXISTS packages (
    arn TEXT PRIMARY KEY, grp TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
    approval_description TEXT, model_data_url TEXT NOT NULL, image TEXT, metrics_uri TEXT, map REAL,
    metadata TEXT NOT NULL, created REAL NOT NULL, execution TEXT, modified REAL, card_content TEXT, card_status TEXT,
    UNIQUE (grp, version)
);
CREATE TABLE IF NOT EXISTS service_quality (
    package TEXT NOT NULL, endpoint TEXT NOT NULL, since TEXT, until TEXT, images INTEGER NOT NULL, boxes INTEGER,
    map REAL, map50 REAL, recorded REAL NOT NULL
);
"""
ACCOUNT = "000000000000"
REGION = "local"
# The metadata key that keeps a package's DriftCheckBaselines as RegisterModel gives them (CreateModelPackage's
# shape: ModelDataQuality.Statistics and ModelQuality.Statistics, each with S3Uri and ContentType), so that the
# monitor finds the served package's baselines here as it does in DescribeModelPackage on AWS.
DRIFT_CHECK_BASELINES = "DriftCheckBaselines"


@dataclass(frozen=True)
class Package:
    arn: str
    group: str
    version: int
    status: str
    approval_description: str | None
    model_data_url: str
    image: str | None
    metrics_uri: str | None
    map: float | None
    metadata: dict
    created: float
    execution: str | None
    modified: float | None = None  # when a person last set its approval status (UpdateModelPackage on AWS); None: never
    # Its model card as CreateModelPackage's ModelCard gives it (ModelCardContent, ModelCardStatus); None: registered without one.
    card_content: str | None = None
    card_status: str | None = None

    @property
    def drift_check_baselines(self) -> dict:
        """The DriftCheckBaselines it was registered with ({} when none: registered before they were recorded)."""
        return dict((self.metadata or {}).get(DRIFT_CHECK_BASELINES) or {})

    @property
    def approved_at_registration(self) -> bool:
        """Approved by the execution that registered it, and by no person since."""
        return self.status == "Approved" and self.modified is None


class State:
    def __init__(self, folder: Path):
        self.folder = folder
        if not folder.exists():  # made owner-only (runs, the registry, captured photos); a folder the user had keeps its mode
            private_folder(folder)
        self.path = folder / "state.sqlite"
        with self._connect() as db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(packages)")}
            if "modified" not in columns:  # a state folder made before approvals were told from registrations
                db.execute("ALTER TABLE packages ADD COLUMN modified REAL")
            for column in ("card_content", "card_status"):  # a state folder made before packages had model cards
                if column not in columns:
                    db.execute(f"ALTER TABLE packages ADD COLUMN {column} TEXT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    # Executions and steps -------------------------------------------------------------------------
    def start_execution(self, execution: str, pipeline: str, parameters: dict) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO executions VALUES (?, ?, 'Executing', ?, ?, NULL, NULL)", (execution, pipeline, json.dumps(parameters), time.time())
            )

    def end_execution(self, execution: str, status: str, failure: str | None = None) -> None:
        with self._connect() as db:
            db.execute("UPDATE executions SET status = ?, ended = ?, failure = ? WHERE id = ?", (status, time.time(), failure, execution))

    def record_step(self, execution: str, name: str, kind: str, status: str, **fields: Any) -> None:
        columns = {"started": None, "ended": None, "failure": None, "log": None, "cached_from": None, "properties": None}
        with self._connect() as db:
            row = db.execute("SELECT * FROM steps WHERE execution = ? AND name = ?", (execution, name)).fetchone()
            values = {
                **columns,
                **(dict(row) if row else {}),
                **{k: (json.dumps(v) if k == "properties" and v is not None else v) for k, v in fields.items()},
            }
            db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    execution,
                    name,
                    kind,
                    status,
                    values["started"],
                    values["ended"],
                    values["failure"],
                    values["log"],
                    values["cached_from"],
                    values["properties"],
                ),
            )

    def executions(self, limit: int = 20, pipeline: str | None = None) -> list[dict]:
        """The newest executions (of `pipeline`, when given), newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM executions WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY started DESC LIMIT ?2", (pipeline, limit))
            return [dict(row) for row in rows]

    def execution(self, execution: str) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM executions WHERE id = ? OR id LIKE ?", (execution, f"{execution}%")).fetchone()
            return dict(row) if row else None

    def steps(self, execution: str) -> list[dict]:
        with self._connect() as db:
            return [dict(row) for row in db.execute("SELECT * FROM steps WHERE execution = ? ORDER BY COALESCE(started, 1e18), name", (execution,))]

    # The step cache --------------------------------------------------------------------------------
    def cached(self, pipeline: str, step: str, key: str, max_age: float) -> tuple[str, dict] | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT execution, properties, created FROM cache WHERE pipeline = ? AND step = ? AND key = ?", (pipeline, step, key)
            ).fetchone()
        if row is None or time.time() - row["created"] > max_age:
            return None
        return row["execution"], json.loads(row["properties"])

    def remember(self, pipeline: str, step: str, key: str, execution: str, properties: dict) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?)", (pipeline, step, key, execution, json.dumps(properties), time.time())
            )

    # The Model Registry ----------------------------------------------------------------------------
    def register(
        self,
        group: str,
        status: str,
        model_data_url: str,
        image: str | None,
        metrics_uri: str | None,
        map_value: float | None,
        metadata: dict,
        execution: str | None,
        card: dict | None = None,
    ) -> Package:
        """A new version of `group`; `card` is CreateModelPackage's ModelCard (ModelCardContent, ModelCardStatus)."""
        card = card or {}
        with self._connect() as db:
            version = (db.execute("SELECT MAX(version) FROM packages WHERE grp = ?", (group,)).fetchone()[0] or 0) + 1
            arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/{version}"
            db.execute(
                "INSERT INTO packages (arn, grp, version, status, approval_description, model_data_url, image, metrics_uri, map, metadata,"
                " created, execution, card_content, card_status) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    arn, group, version, status, model_data_url, image, metrics_uri, map_value, json.dumps(metadata), time.time(), execution,
                    card.get("ModelCardContent"), card.get("ModelCardStatus"),
                ),
            )  # fmt: skip
        return self.package(arn)

    def package(self, reference: str, group: str | None = None) -> Package | None:
        """A package by ARN, or by version number within `group`."""
        with self._connect() as db:
            if reference.isdigit() and group:
                row = db.execute("SELECT * FROM packages WHERE grp = ? AND version = ?", (group, int(reference))).fetchone()
            else:
                row = db.execute("SELECT * FROM packages WHERE arn = ?", (reference,)).fetchone()
        return _package(row) if row else None

    def packages(self, group: str) -> list[Package]:
        with self._connect() as db:
            return [_package(row) for row in db.execute("SELECT * FROM packages WHERE grp = ? ORDER BY version DESC", (group,))]

    def set_status(self, arn: str, status: str, description: str | None, card_status: str | None = None) -> Package:
        """Set its approval status, and its model card's status when `card_status` is given (in the same
        transaction, as UpdateModelPackage takes both in one request)."""
        with self._connect() as db:
            db.execute(
                "UPDATE packages SET status = ?, approval_description = ?, modified = ?, card_status = COALESCE(?, card_status) WHERE arn = ?",
                (status, description, time.time(), card_status, arn),
            )
        return self.package(arn)

    # The accuracy in service ------------------------------------------------------------------------
    def record_service_quality(self, arn: str, endpoint: str, window: dict, quality: dict) -> None:
        """One monitor run's accuracy in service of the package `arn` on `endpoint`: monitor.json's `window` and
        `quality` (containers/monitoring/monitor.py)."""
        figures = (quality.get("images") or 0, quality.get("boxes"), quality.get("map"), quality.get("map50"))
        with self._connect() as db:
            db.execute(
                "INSERT INTO service_quality VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (arn, endpoint, window.get("since"), window.get("until"), *figures, time.time()),
            )

    def service_quality(self, arn: str) -> dict | None:
        """The package's latest recorded accuracy in service, or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM service_quality WHERE package = ? ORDER BY recorded DESC, rowid DESC LIMIT 1", (arn,)).fetchone()
        return dict(row) if row else None


def _package(row: sqlite3.Row) -> Package:
    return Package(
        arn=row["arn"],
        group=row["grp"],
        version=row["version"],
        status=row["status"],
        approval_description=row["approval_description"],
        model_data_url=row["model_data_url"],
        image=row["image"],
        metrics_uri=row["metrics_uri"],
        map=row["map"],
        metadata=json.loads(row["metadata"]),
        created=row["created"],
        execution=row["execution"],
        modified=row["modified"],
        card_content=row["card_content"],
        card_status=row["card_status"],
    )
