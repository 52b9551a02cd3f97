"""Without greenlet installed, importing sqlalchemy.ext.asyncio must not break the app."""

import sys

sys.modules["greenlet"] = None  # makes "import greenlet" raise ImportError, as if absent

import sqlalchemy as sa  # noqa: E402

try:
    import sqlalchemy.ext.asyncio
except ImportError as error:
    print(f"ASYNCIO_IMPORT_ERROR={error}")

engine = sa.create_engine("sqlite://")
with engine.connect() as conn:
    print("RESULT=" + str(conn.execute(sa.text("SELECT 41 + 1")).scalar_one()))
