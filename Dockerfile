# The otel_db demo image: the repo installed with every extra, examples/app.py run
# under opentelemetry-instrument. Built by docker-compose.yml (service "app").
FROM python:3.12.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# psycopg2-binary and asyncpg ship manylinux wheels: no compiler needed.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[all]"

COPY examples ./examples

RUN useradd --create-home --uid 10001 otel_db
USER otel_db

CMD ["opentelemetry-instrument", "python", "examples/app.py"]
