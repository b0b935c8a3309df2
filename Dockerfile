# cxstream worker image (slim, non-root). Build: docker build -t cxstream .
# Build stage: the full Python image has the C compiler with which the wheel's core is compiled
# (setup.py); the build fails rather than ship the slower plain Python core.
FROM python:3.11 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY cxstream ./cxstream
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m zipfile -l /wheels/cxstream-*.whl | grep -q native__mypyc

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# constraints.txt pins the exact versions the test suite passed with (docs/development/dependencies.md).
COPY constraints.txt ./
COPY --from=build /wheels /wheels
RUN pip install -c constraints.txt "$(echo /wheels/cxstream-*.whl)[rocksdb]" && rm -r /wheels \
    && useradd --uid 10001 --create-home cxstream && mkdir /data && chown cxstream /data
USER cxstream
ENV CXSTREAM_DATA_DIR=/data CXSTREAM_STORE=rocksdb:// CXSTREAM_WEB_BIND=0.0.0.0
EXPOSE 6066
# GET /healthz on the configured port (CXSTREAM_WEB_PORT, default 6066) over loopback, so the
# server must bind 127.0.0.1 or all interfaces (the default here). When an API token is
# configured (CXSTREAM_API_TOKEN or CXSTREAM_API_TOKEN_FILE) it is sent as a bearer token:
# /healthz requires it only with CXSTREAM_HEALTH_AUTH on, and ignores it otherwise. Any error,
# 401 or 5xx exits 1 (unhealthy). Checked by tests/unit/deploy/test_dockerfile.py.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; e = os.environ.get; f = e('CXSTREAM_API_TOKEN_FILE'); t = (open(f).read() if f else e('CXSTREAM_API_TOKEN', '')).strip(); u.urlopen(u.Request('http://127.0.0.1:%s/healthz' % (e('CXSTREAM_WEB_PORT') or '6066'), headers={'Authorization': 'Bearer ' + t} if t else {}), timeout=4)"]
ENTRYPOINT ["cxstream"]
CMD ["worker"]
