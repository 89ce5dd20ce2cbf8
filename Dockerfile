FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY collector ./collector
RUN pip install --no-cache-dir . && useradd --system --home /data collector \
    && mkdir -p /data /config && chown collector /data
COPY deploy/collector-entrypoint.sh /usr/local/bin/collector-entrypoint
USER collector
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/collector-entrypoint"]
