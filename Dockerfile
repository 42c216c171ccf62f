# The SOVD command service: slim Python, non-root, data on a volume.
# Pinned by version and by the digest of the multi-architecture index, so a rebuild gets
# the same base; move both together (docker buildx imagetools inspect python:<tag>).
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SOVD_HOST=0.0.0.0 \
    SOVD_PORT=8000 \
    SOVD_DB_PATH=/data/sovd.db \
    OTEL_SEMCONV_STABILITY_OPT_IN=http

WORKDIR /srv
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY otel ./otel
# Extras: "[postgres]" for SOVD_DATABASE_URL (compose's cluster profile builds with it).
ARG SOVD_EXTRAS=""
RUN pip install -c constraints.txt ".${SOVD_EXTRAS}" \
    && groupadd --system --gid 10001 sovd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv sovd \
    && mkdir -p /data && chown 10001:10001 /data && chmod 0700 /data

# A host folder mounted on /data must be writable by uid 10001 (chown 10001:10001 DIR).
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
