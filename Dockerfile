# voiceguard serve in a container: the reference server, one worker per container by default
# (scale with replicas; VOICEGUARD_WORKERS=N uses N cores, its workers counting as one server
# in /healthz and /metrics). See docs/deployment.md.
#
#   docker build -t voiceguard .
#   docker run -p 5050:5050 -e OPENAI_API_KEY -e TWILIO_AUTH_TOKEN \
#       -e VOICEGUARD_PUBLIC_URL=https://voice.example.com voiceguard
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY voiceguard ./voiceguard
RUN pip install ".[server]" && rm -rf /src

# No root inside: the server needs no privilege (it listens above 1024).
RUN useradd --create-home --uid 10001 voiceguard
USER voiceguard
WORKDIR /home/voiceguard

ENV VOICEGUARD_HOST=0.0.0.0 \
    VOICEGUARD_PORT=5050 \
    VOICEGUARD_DRAIN_TIMEOUT=900
EXPOSE 5050

# exec form: the server is PID 1 and gets the SIGTERM itself (a SIGTERM drains: docs/server.md).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:5050/healthz', timeout=2); sys.exit(0)"]
ENTRYPOINT ["voiceguard", "serve"]
