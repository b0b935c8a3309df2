# cxstream worker image (slim, non-root). Build: docker build -t cxstream .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cxstream ./cxstream
RUN pip install '.[rocksdb]' && useradd --uid 10001 --create-home cxstream \
    && mkdir /data && chown cxstream /data
USER cxstream
ENV CXSTREAM_DATA_DIR=/data CXSTREAM_STORE=rocksdb:// CXSTREAM_WEB_BIND=0.0.0.0
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/healthz').status==200 else 1)"
ENTRYPOINT ["cxstream"]
CMD ["worker"]
