# The skewless image: the package, its CLI, and the example feature repo at /app/feature_repo.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY skewless ./skewless
COPY alembic ./alembic
COPY alembic.ini ./
COPY feature_repo ./feature_repo
RUN pip install --no-cache-dir .
ENV SKEWLESS_REPO=/app/feature_repo
ENTRYPOINT ["skewless"]
