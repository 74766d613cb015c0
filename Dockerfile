# One image for API and worker. torch comes from the CUDA wheel index, so the worker can use
# the GPU that docker-compose reserves for it; the API never imports torch.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
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
RUN pip install --no-cache-dir . && useradd --create-home unmask
USER unmask
EXPOSE 8000
CMD ["unmask", "api", "--host", "0.0.0.0", "--port", "8000"]
