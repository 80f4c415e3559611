# syntax=docker/dockerfile:1
# The FullstackAgent platform image: one image for every platform process. docker-compose.yml
# runs it four ways: migrate (one-shot), web (uvicorn, the default CMD), worker and beat (Celery).
# Build from the repository root:   docker build -t fullstackagent:latest .
# (The sandbox image that projects run in is a different one: runtime/Dockerfile.)

# --- front-end packages (xterm.js, htmx) exactly as package-lock.json pins them -----------------
FROM node:22-bookworm-slim AS assets
WORKDIR /build
COPY package.json package-lock.json .npmrc ./
# --omit=optional: the Claude Code CLI's native binary (an optional dependency) is for local
# sandboxes; the platform image serves only the front-end packages.
RUN npm ci --no-audit --no-fund --omit=optional

# --- the platform -------------------------------------------------------------------------------
FROM python:3.11-slim

# PYTHONPATH: the tree in /app (code beside templates/ and static/) is what runs; settings find
# templates relative to their own file, so the copy pip puts in site-packages must not win.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=fullstackagent.settings

WORKDIR /app
COPY . .

# Dependencies from pyproject.toml, without the embedded PostgreSQL/Redis extra: production
# always has DATABASE_URL and REDIS_URL. The build leftovers are not needed at run time.
RUN pip install . \
 && rm -rf build ./*.egg-info

# Static files, hashed and compressed for whitenoise (the manifest storage is what DEBUG=false
# uses, so the build runs with DEBUG=false). Settings refuse to load in that mode without their
# secrets: these placeholders exist only for this one command, nothing connects anywhere, and
# none of them is kept in the image. node_modules is mounted from the assets stage for the copy
# and leaves no layer behind.
RUN --mount=type=bind,from=assets,source=/build/node_modules,target=/app/node_modules \
    DEBUG=false \
    SECRET_KEY=collectstatic-build-placeholder \
    FIELD_ENCRYPTION_KEYS=collectstatic-build-placeholder \
    DATABASE_URL=postgresql://collectstatic@127.0.0.1:1/collectstatic \
    REDIS_URL=redis://127.0.0.1:1/0 \
    python manage.py collectstatic --no-input

# The processes run unprivileged; the code stays owned by root, so they cannot change it. /metrics
# is theirs: docker-compose.yml's metrics volume takes its owner from it (PROMETHEUS_MULTIPROC_DIR).
RUN groupadd --system --gid 10001 fullstackagent \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/fullstackagent \
        --shell /usr/sbin/nologin fullstackagent \
 && mkdir /metrics && chown 10001:10001 /metrics
USER 10001:10001

EXPOSE 8000
CMD ["python", "-m", "fullstackagent.server.serve", "--host", "0.0.0.0", "--port", "8000"]
