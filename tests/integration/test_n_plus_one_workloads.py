"""N+1 detection on real workloads: SQLAlchemy lazy loading, psycopg2 lookups, redis GETs.
A request that issues one query per table, or one batched IN query, is not flagged."""

from __future__ import annotations

import uuid

import psycopg2
import pytest
import redis
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL, REDIS_URL

PG_SQLALCHEMY = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
tracer = trace.get_tracer(__name__)


def _request(spans, name="request"):
    (span,) = [s for s in spans.finished() if s.name == name]
    return span


def _models(suffix: str):
    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"otel_db_author_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        books: Mapped[list[Book]] = relationship(back_populates="author", lazy="select")

    class Book(Base):
        __tablename__ = f"otel_db_book_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        author_id: Mapped[int] = mapped_column(sa.ForeignKey(f"{Author.__tablename__}.id"))
        author: Mapped[Author] = relationship(back_populates="books")

    return Base, Author, Book


@pytest.fixture
def library():
    suffix = uuid.uuid4().hex[:8]
    Base, Author, Book = _models(suffix)
    engine = sa.create_engine(PG_SQLALCHEMY)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for n in range(6):
            session.add(Author(id=n, books=[Book(id=n)]))
        session.commit()
    yield engine, Author, Book
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.mark.postgres
def test_sqlalchemy_lazy_loading_in_a_loop_is_flagged(spans, library):
    engine, Author, _ = library
    spans.clear()
    with tracer.start_as_current_span("request"), Session(engine) as session:
        for author in session.scalars(sa.select(Author)).all():
            assert len(author.books) == 1  # one lazy SELECT per author
    request = _request(spans)
    assert request.attributes[attr.N_PLUS_ONE_DETECTED] is True
    assert request.attributes[attr.N_PLUS_ONE_COUNT] == 6
    assert request.attributes[attr.N_PLUS_ONE_QUERY].startswith("SELECT otel_db_book_")
    assert request.attributes[attr.QUERY_COUNT] >= 7
    flagged = [s for s in spans.db_spans() if s.attributes.get(attr.N_PLUS_ONE)]
    assert len(flagged) == 2  # the 5th and 6th lazy loads (see docs/query-intelligence.md)


@pytest.mark.postgres
def test_sqlalchemy_eager_loading_is_not_flagged(spans, library):
    engine, Author, _ = library
    spans.clear()
    with tracer.start_as_current_span("request"), Session(engine) as session:
        query = sa.select(Author).options(sa.orm.selectinload(Author.books))  # batched IN
        for author in session.scalars(query).all():
            assert len(author.books) == 1
    request = _request(spans)
    assert attr.N_PLUS_ONE_DETECTED not in request.attributes
    assert request.attributes[attr.QUERY_COUNT] >= 2


@pytest.mark.postgres
def test_repeated_psycopg2_lookups_are_flagged_per_request(spans):
    conn = psycopg2.connect(POSTGRES_URL)
    with tracer.start_as_current_span("request"):
        cur = conn.cursor()
        for n in range(5):
            cur.execute("SELECT %s::int AS user_id", (n,))
    with tracer.start_as_current_span("other request"):
        cur.execute("SELECT %s::int AS user_id", (1,))
    conn.close()
    assert _request(spans).attributes[attr.N_PLUS_ONE_COUNT] == 5
    other = _request(spans, "other request")
    assert attr.N_PLUS_ONE_DETECTED not in other.attributes
    assert other.attributes[attr.QUERY_COUNT] == 1


@pytest.mark.postgres
def test_one_query_per_table_is_not_flagged(spans):
    conn = psycopg2.connect(POSTGRES_URL)
    with tracer.start_as_current_span("request"):
        cur = conn.cursor()
        for table in ("pg_class", "pg_namespace", "pg_type", "pg_proc", "pg_database"):
            cur.execute(f"SELECT count(*) FROM {table} WHERE oid > %s", (1,))
    conn.close()
    request = _request(spans)
    assert attr.N_PLUS_ONE_DETECTED not in request.attributes
    assert request.attributes[attr.QUERY_COUNT] == 5


@pytest.mark.redis
def test_a_loop_of_redis_gets_is_flagged(spans):
    client = redis.Redis.from_url(REDIS_URL)
    with tracer.start_as_current_span("request"):
        for n in range(5):
            client.get(f"otel_db:user:{n}")
    client.close()
    request = _request(spans)
    assert request.attributes[attr.N_PLUS_ONE_COUNT] == 5
    assert request.attributes[attr.N_PLUS_ONE_QUERY] == "GET ?"


@pytest.mark.redis
def test_one_redis_mget_is_not_flagged(spans):
    client = redis.Redis.from_url(REDIS_URL)
    with tracer.start_as_current_span("request"):
        client.mget([f"otel_db:user:{n}" for n in range(5)])
    client.close()
    assert attr.N_PLUS_ONE_DETECTED not in _request(spans).attributes
