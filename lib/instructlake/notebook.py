"""What the analyst notebooks (notebooks/*.py) share: open a warehouse, read a table into pandas.

On Databricks the notebook's `spark` is the active session and is reused; locally one is started.
The warehouse comes from the argument, then INSTRUCTLAKE_WAREHOUSE, then the platform config.
"""

from __future__ import annotations

import os

from instructlake.config import load_config
from instructlake.store import Store


def open_warehouse(warehouse: str | None = None, platform: str | None = None) -> Store:
    cfg = load_config(platform, warehouse=warehouse or os.environ.get("INSTRUCTLAKE_WAREHOUSE"))
    from instructlake.spark import get_session

    store = Store(get_session(cfg.platform, "instructlake-notebook"), cfg.warehouse)
    print(f"warehouse {store.warehouse}: {', '.join(store.tables()) or 'no tables yet'}")
    return store


def table(store: Store, name: str, columns: list[str] | None = None):
    """A table as a pandas DataFrame, or None (with a note saying which stage writes it) when it is absent."""
    if not store.exists(name):
        print(f"no {name!r} table in {store.warehouse} yet: run the stage that writes it "
              f"(`instructlake pipeline status` shows which have run)")
        return None
    df = store.read(name)
    return (df.select(*columns) if columns else df).toPandas()
