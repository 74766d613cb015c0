# One image for the migration, the API and the worker. On Linux x86_64, PyPI's torch wheels are
# CUDA builds, so the worker uses the GPU that docker-compose reserves for it; the API process
# never imports torch.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UNMASK_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY api ./api
COPY core ./core
COPY detector ./detector
COPY training ./training
COPY storage ./storage
COPY worker ./worker
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --create-home unmask \
    && mkdir -p /data && chown unmask /data
# The service runs unprivileged and writes only under /data.
USER unmask
VOLUME ["/data"]
EXPOSE 8000
CMD ["unmask", "api", "--host", "0.0.0.0", "--port", "8000", "--processes", "2"]
