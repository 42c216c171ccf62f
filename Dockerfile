# The SOVD command service: slim Python, non-root, data on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SOVD_HOST=0.0.0.0 \
    SOVD_PORT=8000 \
    SOVD_DB_PATH=/data/sovd.db

WORKDIR /srv
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY otel ./otel
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /srv sovd \
    && mkdir -p /data && chown sovd /data

USER sovd
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
